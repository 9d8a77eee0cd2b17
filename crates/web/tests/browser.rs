//! Login, password recovery, invitation and TOTP in a real browser: Debian's chromium driven
//! through chromedriver (WebDriver). Mail goes through a real SMTP server. Screenshots of the
//! main pages are saved under `target/test-artifacts/`.
#![allow(clippy::unwrap_used)]

mod browser_support;
mod support;

use std::time::Duration;

use browser_support::Browser;
use fantoccini::Locator;
use stackspin_identity::totp;
use support::*;

/// A page for the app's redirect URI, so the browser has somewhere to land.
async fn app_callback() -> String {
    use axum::{Router, routing::get};
    let app = Router::new().route("/cb", get(|| async { "app callback reached" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}/cb", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    uri
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_signs_in_through_an_app_and_recovers_a_password() {
    let smtp = SmtpServer::start().await;
    let p = start_with(
        smtp.settings(),
        stackspin_web::ProviderOptions {
            mail_poll_interval: Duration::from_millis(100),
            ..fast_options()
        },
    )
    .await;
    p.user("ada@example.org", false).await;
    let callback = app_callback().await;
    let c = p
        .app(AppSpec {
            redirect_uri: &callback,
            ..Default::default()
        })
        .await;
    let b = Browser::start().await;

    // An app sends the person to Stackspin; they log in and land back in the app with a code.
    b.client
        .goto(&authorize_url(&p, &c, &pkce(), &[]))
        .await
        .unwrap();
    b.wait_for_text("Log in").await;
    b.screenshot("login-page").await;
    b.fill("email", "ada@example.org").await;
    b.fill("password", "not the password").await;
    b.click("login-submit").await;
    assert_eq!(
        b.text("login-error").await,
        "Email or password is incorrect."
    );
    b.fill("password", PASSWORD).await;
    b.click("login-submit").await;
    b.wait_for_text("app callback reached").await;
    let url = b.client.current_url().await.unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert!(q.contains_key("code") && q["state"] == "st4te", "{url}");

    // Forgot password: the link arrives by mail and sets a new password.
    b.client.goto(&p.url("/logout")).await.unwrap();
    b.click("logout-confirm").await;
    b.wait_for_text("You are logged out").await;
    b.client.goto(&p.url("/login")).await.unwrap();
    b.click("forgot").await;
    b.fill("email", "ada@example.org").await;
    b.click("recover-submit").await;
    b.wait_for_text("we have sent it a link").await;
    let link = link_in(&smtp.wait_for("ada@example.org").await);
    b.client.goto(&link).await.unwrap();
    b.fill("password", "my new long password").await;
    b.fill("confirm", "my new long password").await;
    b.screenshot("choose-password-page").await;
    b.click("reset-submit").await;
    b.wait_for_text("Your password is set").await;
    b.log_in(&p, "ada@example.org", "my new long password")
        .await;
    b.wait_for_text("Signed in as").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_accepts_an_invitation_then_enrols_and_uses_totp() {
    let smtp = SmtpServer::start().await;
    let p = start_with(
        smtp.settings(),
        stackspin_web::ProviderOptions {
            mail_poll_interval: Duration::from_millis(100),
            ..fast_options()
        },
    )
    .await;
    // The invitation, as `stackspin user add` queues it.
    let token = stackspin_domain::secret::random_token(32);
    let (subject, body) = stackspin_domain::mail::invitation(
        None,
        "Grace",
        &format!("{}/reset?token={token}", p.base),
        7,
    );
    p.store
        .invite_user(
            &stackspin_domain::NewUser {
                email: stackspin_domain::Email::parse("grace@example.org").unwrap(),
                name: stackspin_domain::UserName::parse("Grace").unwrap(),
                password_hash: None,
                is_admin: false,
            },
            &[],
            &stackspin_storage::NewLink {
                token_hash: stackspin_domain::secret::hash_secret(&token),
                purpose: stackspin_storage::LinkPurpose::Invite,
                expires_at: chrono::Utc::now() + chrono::Duration::days(7),
            },
            &stackspin_storage::OutgoingMail {
                to: "grace@example.org".into(),
                subject,
                body,
            },
        )
        .await
        .unwrap();
    let b = Browser::start().await;
    let link = link_in(&smtp.wait_for("grace@example.org").await);
    b.client.goto(&link).await.unwrap();
    b.wait_for_text("Welcome to Stackspin").await;
    b.fill("password", PASSWORD).await;
    b.fill("confirm", PASSWORD).await;
    b.click("reset-submit").await;
    b.wait_for_text("Your password is set").await;
    b.log_in(&p, "grace@example.org", PASSWORD).await;
    b.wait_for_text("Signed in as").await;

    // Enrol TOTP from the account page, reading the key as a person would type it.
    b.screenshot("apps-page").await;
    b.click("nav-account").await;
    b.wait_for_text("My account").await;
    b.screenshot("account-page").await;
    b.click("mfa-link").await;
    let secret = b.text("totp-secret").await;
    b.screenshot("totp-enrolment-page").await;
    let key = totp::base32_decode(&secret).unwrap();
    let step = chrono::Utc::now().timestamp() / totp::STEP_SECONDS;
    b.fill("code", &totp::code_at(&key, step)).await;
    b.click("enrol-submit").await;
    b.wait_for_text("recovery-codes").await;
    b.click("continue").await;

    // Log out, log in again: the second step asks for a code, a fresh one works.
    b.client.goto(&p.url("/logout")).await.unwrap();
    b.click("logout-confirm").await;
    b.wait_for_text("You are logged out").await;
    b.log_in(&p, "grace@example.org", PASSWORD).await;
    b.wait_for_text("Two-step verification").await;
    b.fill("code", &totp::code_at(&key, step)).await;
    b.click("mfa-submit").await;
    assert_eq!(
        b.text("mfa-error").await,
        "That code is not valid. Codes can be used once."
    );
    b.fill("code", &totp::code_at(&key, step + 1)).await;
    b.click("mfa-submit").await;
    b.wait_for_text("Signed in as").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_admin_manages_users_and_apps() {
    let p = start(fast_options()).await;
    p.user("root@example.org", true).await;
    for i in 0..12 {
        p.store
            .create_user(&stackspin_domain::NewUser {
                email: stackspin_domain::Email::parse(&format!("member{i:02}@example.org"))
                    .unwrap(),
                name: stackspin_domain::UserName::parse(&format!("Member {i:02}")).unwrap(),
                password_hash: None,
                is_admin: false,
            })
            .await
            .unwrap();
    }
    let b = Browser::start().await;
    b.log_in(&p, "root@example.org", PASSWORD).await;
    b.wait_for_text("Signed in as").await;

    // Register an app: the secret is shown once.
    b.click("nav-admin-apps").await;
    b.click("register-app").await;
    b.fill("name", "wiki").await;
    b.fill("display_name", "Team Wiki").await;
    b.fill("url", "https://wiki.example.org").await;
    b.fill("redirect_uris", "https://wiki.example.org/oidc/callback")
        .await;
    b.click("save-app").await;
    let secret = b.text("client-secret").await;
    assert!(secret.len() >= 43);
    b.client.goto(&p.url("/admin/apps")).await.unwrap();
    b.wait_for_text("Team Wiki").await;
    b.screenshot("apps-admin-page").await;

    // Search the users table, then add a user with a role in the new app.
    b.click("nav-users").await;
    b.fill("q", "member1").await;
    b.click("search-submit").await;
    b.wait_for_text("2 users match").await;
    b.client.goto(&p.url("/admin/users")).await.unwrap();
    b.wait_for_text("13 users").await;
    b.screenshot("users-page").await;
    b.click("add-user").await;
    b.fill("name", "Ada Lovelace").await;
    b.fill("email", "ada@example.org").await;
    b.client
        .find(Locator::Css("#role-wiki option[value=admin]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.click("create-user").await;
    b.wait_for_text("Added ada@example.org").await;

    // Edit her: a new name, saved.
    b.client
        .find(Locator::LinkText("ada@example.org"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.fill("name", "Ada King").await;
    b.click("save-user").await;
    b.wait_for_text("Saved.").await;
    let ada = p
        .store
        .user_by_email(&stackspin_domain::Email::parse("ada@example.org").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ada.name.as_str(), "Ada King");
    assert_eq!(
        p.store.roles_of(ada.id).await.unwrap()[0].1,
        stackspin_domain::Role::Admin
    );
    b.close().await;
}

/// The app's home page, where "Launch" goes.
async fn app_home() -> String {
    use axum::{Router, routing::get};
    let app = Router::new().route("/", get(|| async { "app home reached" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// Signs `email` in with a second client and into the app `c`, so that there is an app
/// session for back-channel logout to end.
async fn second_session_in_app(p: &Provider, c: &support::Client, email: &str) -> reqwest::Client {
    let other = browser();
    sign_in(p, &other, email, PASSWORD).await;
    let pk = pkce();
    let code = get_code(p, &other, c, &pk).await;
    let (status, _) = exchange(p, c, &code, &pk.verifier).await;
    assert_eq!(status, 200);
    other
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_member_launches_apps_and_manages_their_account() {
    let p = start(fast_options()).await;
    let ada = p.user("ada@example.org", false).await;
    let home = app_home().await;
    let receiver = logout_receiver(200).await;
    let wiki = p
        .app(AppSpec {
            url: &home,
            backchannel: Some(&receiver.uri),
            ..Default::default()
        })
        .await;
    p.app(AppSpec {
        name: "chat",
        ..Default::default()
    })
    .await;
    p.app(AppSpec {
        name: "payroll",
        default_role: stackspin_domain::Role::None,
        ..Default::default()
    })
    .await;
    p.store
        .set_role(
            &ada.email,
            &stackspin_domain::AppName::parse("wiki").unwrap(),
            stackspin_domain::Role::Admin,
        )
        .await
        .unwrap();
    let other = second_session_in_app(&p, &wiki, "ada@example.org").await;

    let b = Browser::start().await;
    b.log_in(&p, "ada@example.org", PASSWORD).await;
    let html = b.wait_for_text("Signed in as").await;
    // A tile per app she may use, the admin badge on wiki's, none for payroll.
    assert!(html.contains("WIKI") && html.contains("CHAT"), "{html}");
    assert!(!html.contains("PAYROLL"), "{html}");
    let badges = b
        .client
        .find_all(Locator::Css("#app-tiles .badge"))
        .await
        .unwrap();
    assert_eq!(badges.len(), 1);
    assert!(
        b.accessibility_problems().await.is_empty(),
        "{:?}",
        b.accessibility_problems().await
    );
    b.screenshot("launcher").await;
    // Keyboard: Tab from the top of the page reaches the first Launch link after the
    // navigation, in reading order.
    let mut order = vec![];
    for _ in 0..12 {
        b.client
            .active_element()
            .await
            .unwrap()
            .send_keys("\u{E004}")
            .await
            .unwrap();
        let id_or_text: String = serde_json::from_value(
            b.client
                .execute(
                    "const e = document.activeElement; return e.id || e.textContent.trim();",
                    vec![],
                )
                .await
                .unwrap(),
        )
        .unwrap();
        order.push(id_or_text);
    }
    let pos = |needle: &str| order.iter().position(|o| o.starts_with(needle));
    assert!(
        pos("nav-apps").unwrap() < pos("nav-account").unwrap()
            && pos("nav-logout").unwrap() < pos("Launch").unwrap(),
        "focus order: {order:?}"
    );
    // Launch opens the app.
    b.click_css(&format!("#app-tiles a.button[href='{home}']"))
        .await;
    b.wait_for_text("app home reached").await;

    // My account: the wrong current password is refused, then the change goes through.
    b.client.goto(&p.url("/account")).await.unwrap();
    b.fill("current", "not my password").await;
    b.fill("password", "a fresh long password").await;
    b.fill("confirm", "a fresh long password").await;
    b.click("password-submit").await;
    assert_eq!(
        b.text("account-notice").await,
        "Your current password is not right."
    );
    b.fill("current", PASSWORD).await;
    b.fill("password", "a fresh long password").await;
    b.fill("confirm", "a fresh long password").await;
    b.click("password-submit").await;
    b.wait_for_text("Your password is changed").await;
    // The change ended the other session, and the wiki heard of it.
    receiver.wait_for(1).await;
    assert!(!is_signed_in(&p, &other).await);

    // Log out others: a new second session (signed into wiki) ends, this one stays.
    let other = {
        let other = browser();
        sign_in(&p, &other, "ada@example.org", "a fresh long password").await;
        let pk = pkce();
        let code = get_code(&p, &other, &wiki, &pk).await;
        assert_eq!(exchange(&p, &wiki, &code, &pk.verifier).await.0, 200);
        other
    };
    b.client.goto(&p.url("/account")).await.unwrap();
    let rows = b
        .client
        .find_all(Locator::Css("#sessions tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert!(
        b.accessibility_problems().await.is_empty(),
        "{:?}",
        b.accessibility_problems().await
    );
    b.screenshot("account-sessions").await;
    b.click("logout-others").await;
    b.wait_for_text("My account").await;
    receiver.wait_for(2).await;
    assert!(!is_signed_in(&p, &other).await);
    assert_eq!(p.store.sessions_of_user(ada.id).await.unwrap().len(), 1);

    // TOTP: enrol, make new recovery codes with an old one, then turn it off with a new one.
    b.click("mfa-link").await;
    let secret = b.text("totp-secret").await;
    let key = totp::base32_decode(&secret).unwrap();
    let step = chrono::Utc::now().timestamp() / totp::STEP_SECONDS;
    b.fill("code", &totp::code_at(&key, step)).await;
    b.click("enrol-submit").await;
    let first: Vec<String> = b
        .text("recovery-codes")
        .await
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(first.len(), 10);
    b.client.goto(&p.url("/account/mfa")).await.unwrap();
    b.wait_for_text("10 unused recovery codes").await;
    b.fill("regen-code", &first[0]).await;
    b.click("regen-submit").await;
    let second: Vec<String> = b
        .text("recovery-codes")
        .await
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(second.len(), 10);
    assert!(second.iter().all(|c| !first.contains(c)));
    b.screenshot("recovery-codes").await;
    b.client.goto(&p.url("/account/mfa")).await.unwrap();
    b.fill("code", &first[1]).await;
    b.click("remove-submit").await;
    assert_eq!(b.text("mfa-error").await, "That code is not valid.");
    b.fill("code", &second[0]).await;
    b.click("remove-submit").await;
    b.wait_for_text("totp-secret").await;
    assert_eq!(p.store.totp_secret(ada.id).await.unwrap(), None);

    // Log out everywhere.
    b.client.goto(&p.url("/account")).await.unwrap();
    b.click("logout-all").await;
    b.wait_for_text("You are logged out").await;
    assert!(p.store.sessions_of_user(ada.id).await.unwrap().is_empty());
    b.close().await;
}

/// Ticks the users-table checkbox of each address.
async fn tick(b: &Browser, p: &Provider, emails: &[&str]) {
    for e in emails {
        let u = p
            .store
            .user_by_email(&stackspin_domain::Email::parse(e).unwrap())
            .await
            .unwrap()
            .unwrap();
        b.click_css(&format!("input[name=ids][value='{}']", u.id))
            .await;
    }
}

async fn role_in(p: &Provider, email: &str, app: &str) -> stackspin_domain::Role {
    let u = p
        .store
        .user_by_email(&stackspin_domain::Email::parse(email).unwrap())
        .await
        .unwrap()
        .unwrap();
    p.store
        .roles_of(u.id)
        .await
        .unwrap()
        .into_iter()
        .find(|(a, _)| a.as_str() == app)
        .unwrap()
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_admin_runs_batch_actions_access_audit_settings_and_apps() {
    let smtp = SmtpServer::start().await;
    let p = start_with(smtp.settings(), fast_options()).await;
    let root = p.user("root@example.org", true).await;
    for i in 0..6 {
        p.user(&format!("member{i:02}@example.org"), false).await;
    }
    let receiver = logout_receiver(200).await;
    let wiki = p
        .app(AppSpec {
            backchannel: Some(&receiver.uri),
            ..Default::default()
        })
        .await;
    // member05 is signed into the wiki: demoting them must end that session at once.
    let m5 = second_session_in_app(&p, &wiki, "member05@example.org").await;

    let b = Browser::start().await;
    b.log_in(&p, "root@example.org", PASSWORD).await;
    b.wait_for_text("Signed in as").await;

    // Batch role change.
    b.click("nav-users").await;
    b.wait_for_text("7 users").await;
    tick(&b, &p, &["member00@example.org", "member01@example.org"]).await;
    b.select("batch-action", "role").await;
    b.select("batch-app", "wiki").await;
    b.select("batch-role", "admin").await;
    b.click("batch-submit").await;
    b.wait_for_text("Make 2 people admins of").await;
    b.click("confirm-submit").await;
    assert_eq!(
        b.text("changed-notice").await,
        "Changed the role of 2 users. They take effect in the app at once."
    );
    assert_eq!(
        role_in(&p, "member00@example.org", "wiki").await,
        stackspin_domain::Role::Admin
    );
    assert_eq!(
        role_in(&p, "member02@example.org", "wiki").await,
        stackspin_domain::Role::User
    );

    // Batch delete asks first, naming who would go.
    tick(&b, &p, &["member02@example.org", "member03@example.org"]).await;
    b.select("batch-action", "delete").await;
    b.click("batch-submit").await;
    let names = b.text("batch-names").await;
    assert!(names.contains("member02@example.org") && names.contains("member03@example.org"));
    b.screenshot("batch-delete-confirmation").await;
    b.click("confirm-submit").await;
    b.wait_for_text("Deleted 2 users").await;
    assert_eq!(p.store.count_users().await.unwrap(), 5);

    // Delete one user from their page, with a confirmation.
    b.client
        .find(Locator::LinkText("member04@example.org"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.click("delete-user").await;
    b.wait_for_text("member04@example.org").await;
    b.click("confirm-submit").await;
    b.wait_for_text("Deleted member04@example.org").await;

    // Guard rails: the only admin can neither demote nor delete themself.
    b.client
        .goto(&p.url(&format!("/admin/users/{}", root.id)))
        .await
        .unwrap();
    b.click_css("input[name=is_admin]").await;
    b.click("save-user").await;
    assert_eq!(
        b.text("edit-notice").await,
        "This is the last admin: make someone else an admin first."
    );
    b.client
        .goto(&p.url(&format!("/admin/users/{}/delete", root.id)))
        .await
        .unwrap();
    b.wait_for_text("You cannot delete your own account").await;
    assert!(p.store.user_by_id(root.id).await.unwrap().unwrap().is_admin);

    // Two admins editing one user: the later save is refused, not silently merged.
    let m1 = p
        .store
        .user_by_email(&stackspin_domain::Email::parse("member01@example.org").unwrap())
        .await
        .unwrap()
        .unwrap();
    b.client
        .goto(&p.url(&format!("/admin/users/{}", m1.id)))
        .await
        .unwrap();
    b.fill("name", "Name From The Browser").await;
    p.store
        .update_user(
            m1.id,
            m1.updated_at,
            &stackspin_storage::UserPatch {
                name: Some(stackspin_domain::UserName::parse("Name From The API").unwrap()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    b.click("save-user").await;
    assert!(
        b.text("edit-notice")
            .await
            .starts_with("Someone else changed this user")
    );
    assert_eq!(
        p.store
            .user_by_id(m1.id)
            .await
            .unwrap()
            .unwrap()
            .name
            .as_str(),
        "Name From The API"
    );

    // The access matrix: take member05's wiki access away, and make "No access" the default
    // for new users. The wiki hears of member05 at once.
    b.click("nav-access").await;
    let m5_id = p
        .store
        .user_by_email(&stackspin_domain::Email::parse("member05@example.org").unwrap())
        .await
        .unwrap()
        .unwrap()
        .id;
    b.select(&format!("r-{m5_id}-wiki"), "none").await;
    b.select("d-wiki", "none").await;
    assert!(
        b.accessibility_problems().await.is_empty(),
        "{:?}",
        b.accessibility_problems().await
    );
    b.screenshot("access-matrix").await;
    b.click("save-access").await;
    assert_eq!(
        b.text("access-notice").await,
        "Saved 2 changes. Changed roles take effect in the apps at once."
    );
    assert_eq!(
        role_in(&p, "member05@example.org", "wiki").await,
        stackspin_domain::Role::None
    );
    assert_eq!(
        role_in(&p, "member00@example.org", "wiki").await,
        stackspin_domain::Role::Admin
    );
    receiver.wait_for(1).await;
    let pk = pkce();
    let resp = m5
        .get(authorize_url(&p, &wiki, &pk, &[]))
        .send()
        .await
        .unwrap();
    assert_ne!(resp.status(), 303, "no code for someone without access");
    let newcomer = p.user("newcomer@example.org", false).await;
    assert_eq!(
        role_in(&p, newcomer.email.as_str(), "wiki").await,
        stackspin_domain::Role::None
    );

    // The audit log, filtered by kind and by user.
    b.click("nav-audit").await;
    b.fill("f-kind", "role.changed").await;
    b.click("audit-submit").await;
    b.wait_for_url("kind=role.changed").await;
    let table = b.text("audit").await;
    assert!(
        table.contains("role.changed") && table.contains("member05@example.org"),
        "{table}"
    );
    assert!(!table.contains("user.deleted"), "{table}");
    // In people's words, with the stored details: what the role was and became, and who.
    assert!(
        table.contains("Role changed") && table.contains("→ No access"),
        "{table}"
    );
    assert!(
        table.contains("root@example.org") && table.contains("127.0.0.1"),
        "who, and from where: {table}"
    );
    b.fill("f-kind", "").await;
    b.fill("f-user", "member04@example.org").await;
    b.click("audit-submit").await;
    b.wait_for_url("member04%40example.org").await;
    let table = b.text("audit").await;
    assert!(
        table.contains("user.deleted") && !table.contains("member05"),
        "{table}"
    );
    assert!(
        b.accessibility_problems().await.is_empty(),
        "{:?}",
        b.accessibility_problems().await
    );
    b.screenshot("audit-log").await;

    // Settings: require MFA for admins; a test email through the real mail server.
    b.click("nav-settings").await;
    b.click_css("input[name=policy][value=admins]").await;
    b.click("mfa-policy-submit").await;
    b.wait_for_text("Saved.").await;
    assert_eq!(
        p.store.setting("mfa_required").await.unwrap().as_deref(),
        Some("admins")
    );
    b.fill("to", "ops@example.org").await;
    b.click("test-mail-submit").await;
    b.wait_for_text("Sent a test email").await;
    assert_eq!(
        b.text("settings-notice").await,
        "Sent a test email to ops@example.org."
    );
    smtp.wait_for("ops@example.org").await;
    b.screenshot("settings").await;

    // Apps: edit (a new name and an icon), rotate the secret, then remove.
    b.click("nav-admin-apps").await;
    b.client
        .find(Locator::LinkText("WIKI"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.fill("display_name", "Team Wiki").await;
    b.fill("icon_url", "http://insecure.example.org/icon.png")
        .await;
    b.click("save-app").await;
    assert!(b.text("icon_url-error").await.contains("https"));
    b.fill("icon_url", "https://wiki.example.org/icon.png")
        .await;
    b.click("save-app").await;
    b.wait_for_text("Team Wiki").await;
    let status = b.text("status-wiki").await;
    assert!(
        status.contains("OK") || status.contains("signed in"),
        "{status}"
    );
    assert!(
        b.accessibility_problems().await.is_empty(),
        "{:?}",
        b.accessibility_problems().await
    );
    b.screenshot("apps-page-with-status").await;
    b.client
        .find(Locator::Css("a[href='/admin/apps/wiki/rotate']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.click("confirm-submit").await;
    let secret = b.text("client-secret").await;
    assert_ne!(Some(secret.as_str()), wiki.secret.as_deref());
    let fresh = support::Client {
        secret: Some(secret),
        ..wiki.clone()
    };
    let pk = pkce();
    let admin_http = browser();
    sign_in(&p, &admin_http, "member00@example.org", PASSWORD).await;
    let code = get_code(&p, &admin_http, &wiki, &pk).await;
    assert_eq!(
        exchange(&p, &wiki, &code, &pk.verifier).await.0,
        401,
        "the old secret stops"
    );
    let code = get_code(&p, &admin_http, &fresh, &pk).await;
    assert_eq!(exchange(&p, &fresh, &code, &pk.verifier).await.0, 200);
    b.client.goto(&p.url("/admin/apps")).await.unwrap();
    b.client
        .find(Locator::Css("a[href='/admin/apps/wiki/remove']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.click("confirm-submit").await;
    b.wait_for_text("No apps are registered yet").await;
    assert!(p.store.list_apps().await.unwrap().is_empty());

    // On a phone: the main admin pages fit the screen (tables scroll inside their box).
    b.client.set_window_size(390, 844).await.unwrap();
    for (path, shot) in [
        ("/admin/users", "phone-users-page"),
        ("/admin/audit", "phone-audit-log"),
        ("/admin/status", "phone-status-not-connected"),
        ("/", "phone-launcher"),
        ("/account", "phone-account"),
    ] {
        b.client.goto(&p.url(path)).await.unwrap();
        b.wait_for_text("</nav>").await;
        let problems = b.accessibility_problems().await;
        assert!(problems.is_empty(), "{path}: {problems:?}");
        b.screenshot(shot).await;
    }
    b.close().await;
}

/// The Manage apps page with a real operator on the test bed (its chart from a repository on
/// loopback, the stand-in for the real chart repositories): install with a subdomain and a
/// confirmation, the state read back from Flux until ready, the app in the launcher, then
/// uninstall, where removing the data needs the app's name typed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_admin_installs_and_uninstalls_an_app_on_the_cluster() {
    use stackspin_testbed::platform::hello_catalog_files;
    use stackspin_testbed::{ChartRepo, ChartVersion};

    let repo = ChartRepo::serve(&[ChartVersion::new("hello", "0.1.0")])
        .await
        .unwrap();
    let files = hello_catalog_files(&repo.url);
    let catalog = std::sync::Arc::new(
        stackspin_catalog::Catalog::from_files(files.iter().map(|(p, t)| (p.as_str(), t.as_str())))
            .unwrap(),
    );
    let (p, operator) = start_with_operator(catalog).await;
    p.user("root@example.org", true).await;

    let b = Browser::start().await;
    b.log_in(&p, "root@example.org", PASSWORD).await;
    b.wait_for_text("Signed in as").await;
    b.click("nav-catalog").await;
    b.wait_for_text("Connected to the cluster of example.test")
        .await;
    assert_eq!(b.text("state-hello").await, "Not installed");
    b.fill("subdomain-hello", "greetings").await;
    b.click("install-hello").await;
    let question = b.text("confirm-question").await;
    assert!(
        question.contains("https://greetings.example.test/"),
        "{question}"
    );
    b.click("confirm-submit").await;
    // The state the operator reads back from Flux, shown on reload.
    let mut seen = Vec::new();
    for _ in 0..240 {
        let state = b.text("state-hello").await;
        if seen.last() != Some(&state) {
            seen.push(state.clone());
        }
        if state == "Ready" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        b.client.refresh().await.unwrap();
    }
    assert_eq!(
        seen.last().map(String::as_str),
        Some("Ready"),
        "states seen: {seen:?}"
    );
    assert_eq!(b.text("running-hello").await, "0.1.0");
    b.wait_for_text("https://greetings.example.test/").await;
    b.screenshot("manage-apps-installed").await;
    assert!(b.accessibility_problems().await.is_empty());

    // The Status page: the simulated node as the operator read it, and the app working.
    b.click("nav-status").await;
    b.wait_for_text("cores").await;
    b.wait_for_text("Everything is working.").await;
    assert_eq!(
        b.text("app-hello").await.split_whitespace().nth(1),
        Some("Ready")
    );
    b.screenshot("status-page").await;
    assert!(b.accessibility_problems().await.is_empty());

    // Installed apps are in the launcher.
    b.click("nav-apps").await;
    b.wait_for_text("Hello").await;
    assert!(
        b.client
            .source()
            .await
            .unwrap()
            .contains("https://greetings.example.test/")
    );

    // Automatic updates off, then uninstall: removing data needs the name typed.
    b.click("nav-catalog").await;
    b.click("pin-hello").await;
    b.wait_for_text("Turn on automatic updates").await;
    b.click("uninstall-hello").await;
    b.wait_for_text("Its data (volumes) is kept").await;
    b.click("purge").await;
    b.fill("confirm-name", "wrong").await;
    b.click("confirm-submit").await;
    b.wait_for_text("type its name exactly").await;
    b.client.goto(&p.url("/admin/catalog")).await.unwrap();
    b.click("uninstall-hello").await;
    b.click("purge").await;
    b.fill("confirm-name", "hello").await;
    b.click("confirm-submit").await;
    let mut gone = false;
    for _ in 0..240 {
        if b.text("state-hello").await == "Not installed" {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        b.client.refresh().await.unwrap();
    }
    assert!(gone, "hello was not uninstalled");
    assert!(p.store.installed_app("hello").await.unwrap().is_none());
    b.close().await;
    operator.stop().await;
}

/// The Backups page with a real operator and the real Velero server on the test bed, writing
/// to a real S3 API on loopback (moto): "Back up now", then "Restore…" with its warning and
/// the safety backup named, and the progress page until the restore is done. Stand-ins,
/// named: the `hello` chart from a repository on loopback plays the app `notes`; no node
/// agent runs (pods are simulated), so backups hold objects and claims but no files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_admin_backs_up_and_restores_an_app() {
    use stackspin_testbed::platform::app_catalog_files;
    use stackspin_testbed::velero::Velero;
    use stackspin_testbed::{ChartRepo, ChartVersion, TestBed};

    let repo = ChartRepo::serve(&[ChartVersion::new("hello", "0.1.0")])
        .await
        .unwrap();
    let files = app_catalog_files(&repo.url, "notes");
    let catalog = std::sync::Arc::new(
        stackspin_catalog::Catalog::from_files(files.iter().map(|(p, t)| (p.as_str(), t.as_str())))
            .unwrap(),
    );
    let velero = Velero::start(TestBed::get().unwrap()).await.unwrap();
    let config = stackspin_platform::RawClusterConfig::from_toml(&format!(
        "domain = \"example.test\"\nip_address = \"192.0.2.10\"\n\
         admin_email = \"admin@example.test\"\nbackup_time = \"02:30\"\n{}",
        velero.cluster_toml()
    ))
    .unwrap()
    .resolve()
    .unwrap();
    let (p, operator) = start_with_operator_config(catalog, config).await;
    p.user("root@example.org", true).await;
    p.store
        .request_install("notes", None, true, "0.1.0")
        .await
        .unwrap();

    let b = Browser::start().await;
    b.log_in(&p, "root@example.org", PASSWORD).await;
    b.wait_for_text("Signed in as").await;
    b.click("nav-backups").await;
    b.wait_for_text("Nightly backups").await;
    assert_eq!(
        b.text("last-backup").await,
        "No nightly backup has run yet."
    );
    let next = b.text("next-backup").await;
    assert!(
        next.contains("02:30, UTC") && next.contains("kept 30 days"),
        "{next}"
    );
    assert!(b.accessibility_problems().await.is_empty());

    // Wait for the app, then back up the whole platform now.
    for _ in 0..240 {
        let row = p.store.installed_app("notes").await.unwrap().unwrap();
        if row.state == stackspin_storage::AppState::Ready {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    b.client.refresh().await.unwrap();
    b.click("back-up-now-button").await;
    let mut made = None;
    for _ in 0..120 {
        let backups = p.store.backups().await.unwrap();
        if let Some(done) = backups
            .iter()
            .find(|x| x.phase == stackspin_storage::BackupPhase::Completed)
        {
            made = Some(done.name.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let made = made.expect("the backup completed");
    b.client.refresh().await.unwrap();
    let row = b.text(&format!("backup-{made}")).await;
    assert!(
        row.contains("Completed") && row.contains("Holds notes"),
        "{row}"
    );
    b.screenshot("backups-page").await;

    // Restore…: the warning, the safety backup named, a box to tick.
    b.click("restore-notes").await;
    let warning = b.text("restore-warning").await;
    assert!(
        warning.contains("replaces all of Notes's current data"),
        "{warning}"
    );
    assert!(b.text("safety-note").await.contains("notes-safety-"));
    assert!(b.accessibility_problems().await.is_empty());
    b.screenshot("backup-restore-confirm").await;
    b.click("understood").await;
    b.click("restore-submit").await;
    b.wait_for_text("Restoring notes").await;
    let mut state = String::new();
    for _ in 0..240 {
        state = b.text("restore-state").await;
        if state != "Running" {
            break;
        }
        // The page refreshes itself while the restore runs.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(state, "Done", "{}", b.client.source().await.unwrap());
    let steps = b.text("restore-steps").await;
    assert_eq!(steps.matches("(done)").count(), 6, "{steps}");
    assert!(b.text("restore-safety").await.contains("notes-safety-"));
    assert!(b.accessibility_problems().await.is_empty());
    b.screenshot("backup-restore-done").await;

    b.click("back-to-backups").await;
    b.wait_for_text("safety backup before a restore").await;
    // The weekly restore drill ran once there was a backup, and says how it went.
    let mut drill = String::new();
    for _ in 0..120 {
        drill = b.text("drill-result").await;
        if drill.contains("passed") || drill.contains("failed") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        b.client.refresh().await.unwrap();
    }
    assert!(drill.contains("passed"), "{drill}");
    assert!(
        b.text("drill-apps")
            .await
            .contains("claims back: notes-data"),
        "{}",
        b.text("drill-apps").await
    );
    assert!(b.accessibility_problems().await.is_empty());
    b.screenshot("backups-page-after").await;
    b.close().await;

    // Leave the namespace as found.
    p.store.request_uninstall("notes", true).await.unwrap();
    for _ in 0..240 {
        if p.store.installed_app("notes").await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    operator.stop().await;
}
