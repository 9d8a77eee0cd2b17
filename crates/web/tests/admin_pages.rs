//! The admin Users pages: only admins, server-side search/sort/pages, adding with roles.
#![allow(clippy::unwrap_used)]

mod support;

use stackspin_domain::{AppName, Email, NewUser, Role, UserName};
use support::*;

#[tokio::test]
async fn non_admins_cannot_open_or_post_the_admin_pages() {
    let p = start(fast_options()).await;
    p.user("ada@example.org", false).await;
    let b = browser();
    sign_in(&p, &b, "ada@example.org", PASSWORD).await;
    for path in [
        "/admin/users",
        "/admin/users/new",
        "/admin/audit",
        "/admin/settings",
    ] {
        assert_eq!(
            b.get(p.url(path)).send().await.unwrap().status(),
            403,
            "{path}"
        );
    }
    let page = b
        .get(p.url("/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("nav-users"), "no Users link for non-admins");
    let csrf = hidden_value(&page, "csrf");
    let resp = b
        .post(p.url("/admin/users"))
        .form(&[
            ("name", "X"),
            ("email", "x@example.org"),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(p.store.count_users().await.unwrap(), 1);
}

#[tokio::test]
async fn the_users_table_searches_sorts_and_pages_on_the_server() {
    let p = start(fast_options()).await;
    p.user("root@example.org", true).await;
    for i in 0..60 {
        p.store
            .create_user(&NewUser {
                email: Email::parse(&format!("member{i:02}@example.org")).unwrap(),
                name: UserName::parse(&format!("Member {i:02}")).unwrap(),
                password_hash: None,
                is_admin: false,
            })
            .await
            .unwrap();
    }
    let b = browser();
    sign_in(&p, &b, "root@example.org", PASSWORD).await;
    let html = b
        .get(p.url("/admin/users"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(html.matches("\">member").count(), 50, "50 a page");
    assert!(
        html.contains("61 users") && html.contains("Page 1 of 2"),
        "{html}"
    );
    assert!(html.contains("aria-sort=\"ascending\""));
    let html = b
        .get(p.url("/admin/users?page=2"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(html.matches("\">member").count(), 10);
    assert!(html.contains(">root@example.org</a>"));
    let html = b
        .get(p.url("/admin/users?q=MEMBER0"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("10 users match"), "{html}");
    let html = b
        .get(p.url("/admin/users?sort=name&order=desc"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let first = html.find(">member59@example.org</a>").unwrap();
    let second = html.find(">member58@example.org</a>").unwrap();
    assert!(first < second, "descending by name");
}

#[tokio::test]
async fn adding_a_user_validates_next_to_fields_and_sends_an_invitation() {
    let p = start(fast_options()).await;
    p.user("root@example.org", true).await;
    p.app(AppSpec::default()).await;
    let b = browser();
    sign_in(&p, &b, "root@example.org", PASSWORD).await;
    let page = b
        .get(p.url("/admin/users/new"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("name=\"role.wiki\""), "a role choice per app");
    let csrf = hidden_value(&page, "csrf");

    let resp = b
        .post(p.url("/admin/users"))
        .form(&[
            ("name", " "),
            ("email", "not-an-email"),
            ("role.wiki", "admin"),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("id=\"name-error\"") && html.contains("id=\"email-error\""),
        "{html}"
    );
    assert!(
        html.contains("value=\"not-an-email\""),
        "what was typed is kept"
    );

    let resp = b
        .post(p.url("/admin/users"))
        .form(&[
            ("name", "Ada"),
            ("email", "ada@example.org"),
            ("is_admin", "yes"),
            ("role.wiki", "admin"),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), "/admin/users");
    let ada = p
        .store
        .user_by_email(&Email::parse("ada@example.org").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(ada.is_admin && !ada.has_password());
    assert_eq!(
        p.store.roles_of(ada.id).await.unwrap(),
        [(AppName::parse("wiki").unwrap(), Role::Admin)]
    );
    assert_eq!(
        p.store.pending_mail().await.unwrap(),
        1,
        "invitation queued"
    );
    let html = b
        .get(p.url("/admin/users"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Added ada@example.org"));

    let resp = b
        .post(p.url("/admin/users"))
        .form(&[
            ("name", "Again"),
            ("email", "ADA@example.org"),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("already has this email address")
    );
}

async fn edit_page(p: &Provider, b: &reqwest::Client, id: &str) -> (String, String, String) {
    let html = b
        .get(p.url(&format!("/admin/users/{id}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (
        hidden_value(&html, "csrf"),
        hidden_value(&html, "version"),
        html,
    )
}

#[tokio::test]
async fn editing_a_user_saves_details_and_roles_together_and_detects_conflicts() {
    let p = start(fast_options()).await;
    p.user("root@example.org", true).await;
    p.user("second@example.org", true).await;
    p.app(AppSpec::default()).await;
    let ada = p.user("ada@example.org", false).await;
    let id = ada.id.to_string();
    let (a1, a2) = (browser(), browser());
    sign_in(&p, &a1, "root@example.org", PASSWORD).await;
    sign_in(&p, &a2, "second@example.org", PASSWORD).await;

    // Both admins open the form.
    let (csrf1, version1, html) = edit_page(&p, &a1, &id).await;
    assert!(html.contains("value=\"Test Person\""));
    let (csrf2, version2, _) = edit_page(&p, &a2, &id).await;
    assert_eq!(version1, version2);

    let resp = a1
        .post(p.url(&format!("/admin/users/{id}")))
        .form(&[
            ("name", "Ada Lovelace"),
            ("email", "ada@example.org"),
            ("role.wiki", "admin"),
            ("version", version1.as_str()),
            ("csrf", csrf1.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), format!("/admin/users/{id}?saved=1"));
    let stored = p.store.user_by_id(ada.id).await.unwrap().unwrap();
    assert_eq!(stored.name.as_str(), "Ada Lovelace");
    assert_eq!(p.store.roles_of(ada.id).await.unwrap()[0].1, Role::Admin);

    // The second admin's save, based on the old version, must not overwrite the first.
    let resp = a2
        .post(p.url(&format!("/admin/users/{id}")))
        .form(&[
            ("name", "Someone Else"),
            ("email", "ada@example.org"),
            ("role.wiki", "none"),
            ("version", version2.as_str()),
            ("csrf", csrf2.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    let html = resp.text().await.unwrap();
    assert!(html.contains("Someone else changed this user"), "{html}");
    assert!(
        html.contains("value=\"Ada Lovelace\""),
        "shows the current values"
    );
    assert_eq!(
        p.store
            .user_by_id(ada.id)
            .await
            .unwrap()
            .unwrap()
            .name
            .as_str(),
        "Ada Lovelace"
    );
    assert_eq!(
        p.store.roles_of(ada.id).await.unwrap()[0].1,
        Role::Admin,
        "nothing half-saved"
    );

    // Field errors next to the fields.
    let (csrf, version, _) = edit_page(&p, &a1, &id).await;
    let resp = a1
        .post(p.url(&format!("/admin/users/{id}")))
        .form(&[
            ("name", ""),
            ("email", "root@example.org"),
            ("version", version.as_str()),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    assert!(resp.text().await.unwrap().contains("id=\"name-error\""));
    let events = p
        .store
        .audit_events(&stackspin_storage::AuditFilter {
            kind: Some("role.changed".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events[0].actor.as_deref(), Some("root@example.org"));
}

#[tokio::test]
async fn deleting_asks_first_and_keeps_the_last_admin() {
    let p = start(fast_options()).await;
    let root = p.user("root@example.org", true).await;
    let ada = p.user("ada@example.org", false).await;
    let b = browser();
    sign_in(&p, &b, "root@example.org", PASSWORD).await;
    let html = b
        .get(p.url(&format!("/admin/users/{}/delete", ada.id)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Delete Test Person &#60;ada@example.org&#62;?"),
        "{html}"
    );
    let csrf = hidden_value(&html, "csrf");
    // A GET never deletes; the POST does.
    assert!(p.store.user_by_id(ada.id).await.unwrap().is_some());
    let resp = b
        .post(p.url(&format!("/admin/users/{}/delete", ada.id)))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&resp), "/admin/users");
    let html = b
        .get(p.url("/admin/users"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Deleted ada@example.org."), "{html}");
    // The notice is shown once, and a crafted link cannot make one up.
    let html = b
        .get(p.url("/admin/users?deleted=your%20account%20was%20hacked"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains("Deleted"), "{html}");
    assert!(p.store.user_by_id(ada.id).await.unwrap().is_none());
    let resp = b
        .post(p.url(&format!("/admin/users/{}/delete", root.id)))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    // Demoting the last admin is refused too.
    let (csrf, version, _) = edit_page(&p, &b, &root.id.to_string()).await;
    let resp = b
        .post(p.url(&format!("/admin/users/{}", root.id)))
        .form(&[
            ("name", "Root"),
            ("email", "root@example.org"),
            ("version", version.as_str()),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    assert!(resp.text().await.unwrap().contains("last admin"));
}

#[tokio::test]
async fn the_audit_log_filters_by_user_kind_and_date() {
    let p = start(fast_options()).await;
    p.user("root@example.org", true).await;
    p.user("ada@example.org", false).await;
    sign_in(&p, &browser(), "ada@example.org", "wrong password!!").await;
    sign_in(&p, &browser(), "ada@example.org", PASSWORD).await;
    let b = browser();
    sign_in(&p, &b, "root@example.org", PASSWORD).await;
    let get = |q: &'static str| {
        let b = b.clone();
        let url = p.url(&format!("/admin/audit?{q}"));
        async move { b.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let all = get("").await;
    assert!(
        all.contains("login.failure") && all.contains("login.success"),
        "{all}"
    );
    let ada = get("user=ada%40example.org&kind=login.failure").await;
    assert_eq!(
        ada.matches(r#"<code class="hint">login.failure</code>"#)
            .count(),
        1
    );
    assert!(!ada.contains(r#"<code class="hint">login.success</code>"#));
    let prefix = get("kind=login.").await;
    assert_eq!(
        prefix
            .matches(r#"<code class="hint">login.success</code>"#)
            .count(),
        2
    );
    // As people type it: "login" finds the family, without the trailing dot.
    let family = get("kind=login").await;
    assert_eq!(
        family
            .matches(r#"<code class="hint">login.success</code>"#)
            .count(),
        2
    );
    assert_eq!(
        family
            .matches(r#"<code class="hint">login.failure</code>"#)
            .count(),
        1
    );
    // Named in words, with the raw kind beside for filtering.
    assert!(family.contains("Sign-in failed") && family.contains("Signed in"));
    let past = get("to=2000-01-01").await;
    assert!(past.contains("No events match."));
    let resp = b
        .get(p.url("/admin/audit?from=yesterday"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
}

#[tokio::test]
async fn settings_set_the_mfa_policy_and_send_a_test_email() {
    let smtp = SmtpServer::start().await;
    let p = start_with(smtp.settings(), fast_options()).await;
    p.user("root@example.org", true).await;
    let b = browser();
    sign_in(&p, &b, "root@example.org", PASSWORD).await;
    let page = b
        .get(p.url("/admin/settings"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Mail is sent through 127.0.0.1:"), "{page}");
    let csrf = hidden_value(&page, "csrf");
    let resp = b
        .post(p.url("/admin/settings/mfa"))
        .form(&[("policy", "admins"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert!(resp.text().await.unwrap().contains("Saved."));
    assert_eq!(
        p.store
            .setting(stackspin_web::MFA_SETTING)
            .await
            .unwrap()
            .as_deref(),
        Some("admins")
    );
    let resp = b
        .post(p.url("/admin/settings/mfa"))
        .form(&[("policy", "sometimes"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("Choose one of the options.")
    );
    let resp = b
        .post(p.url("/admin/settings/test-mail"))
        .form(&[("to", "check@example.org"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("Sent a test email to check@example.org.")
    );
    assert!(
        smtp.wait_for("check@example.org")
            .await
            .contains("Subject: Stackspin test email")
    );
}

#[tokio::test]
async fn the_test_email_reports_a_mail_server_that_is_down() {
    let smtp = SmtpServer::planned();
    let p = start_with(smtp.settings(), fast_options()).await;
    p.user("root@example.org", true).await;
    let b = browser();
    sign_in(&p, &b, "root@example.org", PASSWORD).await;
    let page = b
        .get(p.url("/admin/settings"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden_value(&page, "csrf");
    let resp = b
        .post(p.url("/admin/settings/test-mail"))
        .form(&[("to", "check@example.org"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    let html = resp.text().await.unwrap();
    assert!(html.contains("did not accept the test email"), "{html}");
}

fn code_value(html: &str, id: &str) -> String {
    let marker = format!("<code id=\"{id}\">");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {id} in {html}"))
        + marker.len();
    html[start..start + html[start..].find('<').unwrap()].to_owned()
}

/// Whether `secret` authenticates `client_id` at the provider (introspection needs client auth).
async fn secret_works(p: &Provider, client_id: &str, secret: &str) -> bool {
    let resp = reqwest::Client::new()
        .post(p.url("/introspect"))
        .form(&[
            ("token", "x"),
            ("client_id", client_id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .unwrap();
    resp.status() == 200
}

#[tokio::test]
async fn apps_are_registered_edited_rotated_and_removed_from_the_dashboard() {
    let p = start(fast_options()).await;
    let root = p.user("root@example.org", true).await;
    let b = browser();
    sign_in(&p, &b, "root@example.org", PASSWORD).await;
    let page = b
        .get(p.url("/admin/apps/new"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden_value(&page, "csrf");

    let resp = b
        .post(p.url("/admin/apps"))
        .form(&[
            ("name", "Bad Name"),
            ("url", "nope"),
            ("redirect_uris", "http://wiki.example.org/cb"),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let html = resp.text().await.unwrap();
    for id in ["name-error", "url-error", "redirect_uris-error"] {
        assert!(html.contains(&format!("id=\"{id}\"")), "{id}: {html}");
    }

    let resp = b
        .post(p.url("/admin/apps"))
        .form(&[
            ("name", "wiki"),
            ("display_name", "Team Wiki"),
            ("url", "https://wiki.example.org"),
            (
                "redirect_uris",
                "https://wiki.example.org/cb\nhttps://wiki.example.org/cb2\n",
            ),
            ("default_role", "none"),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let html = resp.text().await.unwrap();
    let client_id = code_value(&html, "client-id");
    let secret = code_value(&html, "client-secret");
    assert!(secret_works(&p, &client_id, &secret).await);
    let app = p.store.app_by_client_id(&client_id).await.unwrap().unwrap();
    assert_eq!(app.redirect_uris.len(), 2);
    assert_eq!(app.default_role, Role::None);
    let list = b
        .get(p.url("/admin/apps"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        list.contains("Team Wiki") && !list.contains(&secret),
        "the secret is shown once"
    );

    // Edit: new address and default role; name and type stay.
    let page = b
        .get(p.url("/admin/apps/wiki"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("https://wiki.example.org/cb2"));
    let resp = b
        .post(p.url("/admin/apps/wiki"))
        .form(&[
            ("display_name", "Wiki"),
            ("url", "https://docs.example.org"),
            ("redirect_uris", "https://docs.example.org/cb"),
            ("default_role", "user"),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&resp), "/admin/apps");
    let app = p.store.app_by_client_id(&client_id).await.unwrap().unwrap();
    assert_eq!(
        (app.url.as_str(), app.default_role),
        ("https://docs.example.org/", Role::User)
    );

    // Rotate: asks first; the old secret stops working at once.
    let confirm = b
        .get(p.url("/admin/apps/wiki/rotate"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(confirm.contains("stops working at once"));
    let html = b
        .post(p.url("/admin/apps/wiki/rotate"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let new_secret = code_value(&html, "client-secret");
    assert!(!secret_works(&p, &client_id, &secret).await);
    assert!(secret_works(&p, &client_id, &new_secret).await);

    // Remove: roles in it go too.
    p.store
        .set_role(&root.email, &AppName::parse("wiki").unwrap(), Role::Admin)
        .await
        .unwrap();
    let resp = b
        .post(p.url("/admin/apps/wiki/remove"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&resp), "/admin/apps");
    assert!(
        p.store
            .app_by_client_id(&client_id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(p.store.roles_of(root.id).await.unwrap().is_empty());
    let kinds: Vec<String> = p
        .store
        .audit_events(&stackspin_storage::AuditFilter {
            kind: Some("client.".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "client.removed",
            "client.secret_rotated",
            "client.updated",
            "client.registered"
        ]
    );
}

#[tokio::test]
async fn the_access_matrix_saves_changed_cells_and_refuses_stale_ones() {
    let p = start(fast_options()).await;
    p.user("root@example.org", true).await;
    let ada = p.user("ada@example.org", false).await;
    let bob = p.user("bob@example.org", false).await;
    p.app(AppSpec::default()).await;
    p.app(AppSpec {
        name: "chat",
        redirect_uri: "https://chat.example.org/cb",
        ..Default::default()
    })
    .await;
    let b = browser();
    sign_in(&p, &b, "root@example.org", PASSWORD).await;
    let html = b
        .get(p.url("/admin/access"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden_value(&html, "csrf");
    // People are shown by name (with the email beneath), and the defaults for new people
    // are a section of their own, not a row among the people.
    assert!(
        html.contains(r#"<span class="person">Test Person</span><br><span class="hint">ada@example.org</span>"#),
        "{html}"
    );
    let defaults = html.find(r#"id="defaults""#).unwrap();
    let table = html.find(r#"<table id="access">"#).unwrap();
    assert!(defaults < table && html[defaults..table].contains(r#"id="d-wiki""#));
    let cell = |u: &stackspin_domain::User, app: &str| format!("{}.{app}", u.id);
    // Submit the whole matrix as shown, with Ada made admin of chat and wiki locked by default.
    let mut form: Vec<(String, String)> =
        vec![("csrf".into(), csrf.clone()), ("page".into(), "1".into())];
    for u in [&ada, &bob] {
        for app in ["chat", "wiki"] {
            form.push((format!("o.{}", cell(u, app)), "user".into()));
            let chosen = if u.id == ada.id && app == "chat" {
                "admin"
            } else {
                "user"
            };
            form.push((format!("r.{}", cell(u, app)), chosen.into()));
        }
    }
    form.push(("d.wiki".into(), "none".into()));
    form.push(("d.chat".into(), "user".into()));
    let resp = b
        .post(p.url("/admin/access"))
        .form(&form)
        .send()
        .await
        .unwrap();
    // One role and one default changed: "saved" counts them.
    assert_eq!(location(&resp), "/admin/access?page=1&saved=2");
    // Saving what is already so says so, instead of "Saved".
    let resp = b
        .post(p.url("/admin/access"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("page", "1"),
            ("d.wiki", "none"),
            ("d.chat", "user"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&resp), "/admin/access?page=1&saved=0");
    let html = b
        .get(p.url("/admin/access?page=1&saved=0"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Nothing changed."), "{html}");
    assert!(!html.contains("Saved"), "{html}");
    let roles = p.store.roles_of(ada.id).await.unwrap();
    assert_eq!(
        roles,
        [
            (AppName::parse("chat").unwrap(), Role::Admin),
            (AppName::parse("wiki").unwrap(), Role::User)
        ]
    );
    assert_eq!(
        p.store
            .app_by_name(&AppName::parse("wiki").unwrap())
            .await
            .unwrap()
            .unwrap()
            .default_role,
        Role::None
    );
    assert_eq!(
        p.store.roles_of(bob.id).await.unwrap()[1].1,
        Role::User,
        "explicit roles survive a default change"
    );

    // Someone else changes Bob's chat role after the page was loaded: the save is refused whole.
    let html = b
        .get(p.url("/admin/access"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Saved.") || html.contains("access"), "{html}");
    p.store
        .set_role(&bob.email, &AppName::parse("chat").unwrap(), Role::None)
        .await
        .unwrap();
    let stale = vec![
        ("csrf".to_owned(), csrf.clone()),
        (format!("o.{}", cell(&bob, "chat")), "user".to_owned()),
        (format!("r.{}", cell(&bob, "chat")), "admin".to_owned()),
        (format!("o.{}", cell(&ada, "wiki")), "user".to_owned()),
        (format!("r.{}", cell(&ada, "wiki")), "none".to_owned()),
    ];
    let resp = b
        .post(p.url("/admin/access"))
        .form(&stale)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("changed by someone else")
    );
    assert_eq!(p.store.roles_of(bob.id).await.unwrap()[0].1, Role::None);
    assert_eq!(
        p.store.roles_of(ada.id).await.unwrap()[1].1,
        Role::User,
        "nothing half-saved"
    );
}

#[tokio::test]
async fn batch_role_change_and_batch_delete_with_confirmation() {
    let p = start(fast_options()).await;
    let root = p.user("root@example.org", true).await;
    let ada = p.user("ada@example.org", false).await;
    let bob = p.user("bob@example.org", false).await;
    p.app(AppSpec::default()).await;
    let b = browser();
    sign_in(&p, &b, "root@example.org", PASSWORD).await;
    let html = b
        .get(p.url("/admin/users"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("name=\"ids\""));
    let csrf = hidden_value(&html, "csrf");
    let (a, bo) = (ada.id.to_string(), bob.id.to_string());
    let resp = b
        .post(p.url("/admin/users/batch"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("action", "role"),
            ("app", "wiki"),
            ("role", "admin"),
            ("ids", a.as_str()),
            ("ids", bo.as_str()),
        ])
        .send()
        .await
        .unwrap();
    // Granting admin asks first, naming everyone, and changes nothing until confirmed.
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("Make 2 people admins of") && html.contains("ada@example.org"),
        "{html}"
    );
    assert!(
        p.store
            .roles_of(ada.id)
            .await
            .unwrap()
            .iter()
            .all(|r| r.1 != Role::Admin)
    );
    let resp = b
        .post(p.url("/admin/users/batch"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("action", "role"),
            ("app", "wiki"),
            ("role", "admin"),
            ("confirm", "yes"),
            ("ids", a.as_str()),
            ("ids", bo.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&resp), "/admin/users");
    let html = b
        .get(p.url("/admin/users"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Changed the role of 2 users"), "{html}");
    for u in [&ada, &bob] {
        assert_eq!(p.store.roles_of(u.id).await.unwrap()[0].1, Role::Admin);
    }
    // Delete asks first, naming everyone, and deletes nothing until confirmed.
    let resp = b
        .post(p.url("/admin/users/batch"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("action", "delete"),
            ("ids", a.as_str()),
            ("ids", bo.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("Delete 2 users?")
            && html.contains("ada@example.org")
            && html.contains("bob@example.org")
    );
    assert_eq!(p.store.count_users().await.unwrap(), 3);
    // All admins selected: refused whole.
    let r = root.id.to_string();
    let resp = b
        .post(p.url("/admin/users/batch"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("action", "delete"),
            ("confirm", "yes"),
            ("ids", a.as_str()),
            ("ids", r.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    assert_eq!(p.store.count_users().await.unwrap(), 3, "nothing deleted");
    let resp = b
        .post(p.url("/admin/users/batch"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("action", "delete"),
            ("confirm", "yes"),
            ("ids", a.as_str()),
            ("ids", bo.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&resp), "/admin/users");
    let html = b
        .get(p.url("/admin/users"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Deleted 2 users."), "{html}");
    assert_eq!(p.store.count_users().await.unwrap(), 1);
}
