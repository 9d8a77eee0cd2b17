//! The Dashboard's guard rails in a real browser (chromium through chromedriver): an admin
//! cannot lock the organisation out, dangerous actions ask first and look dangerous, weak
//! passwords are refused with advice, and error pages always lead somewhere.
#![allow(clippy::unwrap_used)]

mod browser_support;
mod support;

use browser_support::Browser;
use stackspin_domain::{Email, NewUser, Role, UserName};
use support::*;

async fn user_id(p: &Provider, email: &str) -> stackspin_domain::UserId {
    p.store
        .user_by_email(&Email::parse(email).unwrap())
        .await
        .unwrap()
        .unwrap()
        .id
}

async fn role_in(p: &Provider, email: &str) -> Role {
    let id = user_id(p, email).await;
    p.store
        .roles_of(id)
        .await
        .unwrap()
        .into_iter()
        .find(|(app, _)| app.as_str() == "wiki")
        .map(|(_, r)| r)
        .unwrap_or(Role::User)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_cannot_lock_the_organisation_out() {
    let p = start(fast_options()).await;
    let root = p.user("root@example.org", true).await;
    p.user("member@example.org", false).await;
    p.app(AppSpec::default()).await;
    // A second admin who was invited and never chose a password: they cannot log in, so they
    // do not count as someone who could still manage the platform.
    p.store
        .create_user(&NewUser {
            email: Email::parse("invited-admin@example.org").unwrap(),
            name: UserName::parse("Invited Admin").unwrap(),
            password_hash: None,
            is_admin: true,
        })
        .await
        .unwrap();
    let b = Browser::start().await;
    b.log_in(&p, "root@example.org", PASSWORD).await;
    b.wait_for_text("Signed in as").await;

    // The batch bar starts on no action at all (it used to start on "Set role … Admin").
    b.click("nav-users").await;
    b.wait_for_text("3 users.").await;
    let chosen = b
        .client
        .execute(
            "return [document.getElementById('batch-action').value, \
             document.getElementById('batch-role').value];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(chosen, serde_json::json!(["", "user"]));

    // Making someone an admin of an app asks first, naming them; cancelling changes nothing.
    let member = user_id(&p, "member@example.org").await;
    b.click_css(&format!("input[name=ids][value='{member}']"))
        .await;
    b.select("batch-action", "role").await;
    b.select("batch-app", "wiki").await;
    b.select("batch-role", "admin").await;
    b.click("batch-submit").await;
    b.wait_for_text("Make 1 person an admin of").await;
    assert!(b.text("batch-names").await.contains("member@example.org"));
    b.click("confirm-cancel").await;
    b.wait_for_text("3 users.").await;
    assert_eq!(role_in(&p, "member@example.org").await, Role::User);

    // An admin cannot delete themself: not from their page, not in a batch.
    b.client
        .goto(&p.url(&format!("/admin/users/{}/delete", root.id)))
        .await
        .unwrap();
    b.wait_for_text("You cannot delete your own account").await;
    assert_eq!(b.text("message-link").await, "Go back");
    b.click("message-link").await;
    b.wait_for_text("3 users.").await;
    b.click_css(&format!("input[name=ids][value='{}']", root.id))
        .await;
    b.select("batch-action", "delete").await;
    b.click("batch-submit").await;
    b.wait_for_text("You cannot delete your own account").await;
    assert!(p.store.user_by_id(root.id).await.unwrap().is_some());

    // Nor give up being an admin while the only other admin has never logged in.
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
    assert!(p.store.user_by_id(root.id).await.unwrap().unwrap().is_admin);

    // Deleting someone else asks first, in red, and says it cannot be undone.
    b.client
        .goto(&p.url(&format!("/admin/users/{member}/delete")))
        .await
        .unwrap();
    assert_eq!(b.text("cannot-undo").await, "This cannot be undone.");
    let class = b
        .client
        .execute(
            "return document.getElementById('confirm-submit').className;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(class, "danger");
    b.click("confirm-submit").await;
    b.wait_for_text("Deleted member@example.org").await;

    // "Nothing selected" leads back instead of ending the road.
    b.select("batch-action", "delete").await;
    b.click("batch-submit").await;
    b.wait_for_text("Nothing selected").await;
    b.click("message-link").await;
    b.wait_for_text("2 users.").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weak_passwords_are_refused_with_advice_and_forms_speak_plainly() {
    let p = start(fast_options()).await;
    p.user("root@example.org", true).await;
    let member = p.user("ada.lovelace@example.org", false).await;
    let b = Browser::start().await;
    b.log_in(&p, "ada.lovelace@example.org", PASSWORD).await;
    b.wait_for_text("Signed in as").await;

    // Twelve characters used to be enough, whatever they were.
    for (weak, advice) in [
        (
            "aaaaaaaaaaaa",
            "Repeated letters or words are easy to guess.",
        ),
        ("password1234", "one that many people use"),
        ("adalovelace1815", "leans on your name or email address"),
    ] {
        b.client.goto(&p.url("/account")).await.unwrap();
        b.fill("current", PASSWORD).await;
        b.fill("password", weak).await;
        b.fill("confirm", weak).await;
        b.click("password-submit").await;
        let notice = b.text("account-notice").await;
        assert!(notice.contains(advice), "{weak:?}: {notice}");
    }
    let unchanged = p.store.user_by_id(member.id).await.unwrap().unwrap();
    assert!(
        cheap_params()
            .verify(PASSWORD, unchanged.password_hash.as_ref().unwrap())
            .matched()
    );
    b.client.goto(&p.url("/account")).await.unwrap();
    b.fill("current", PASSWORD).await;
    b.fill("password", "violet tractor Lisbon harbour").await;
    b.fill("confirm", "violet tractor Lisbon harbour").await;
    b.click("password-submit").await;
    let notice = b.text("account-notice").await;
    assert!(!notice.contains("guess"), "{notice}");
    b.close().await;

    // An admin adding someone reads sentences, not parser output; counts read as English.
    let b = Browser::start().await;
    b.log_in(&p, "root@example.org", PASSWORD).await;
    b.wait_for_text("Signed in as").await;
    b.client.goto(&p.url("/admin/users/new")).await.unwrap();
    b.fill("name", "Grace").await;
    b.fill("email", "grace.example.org").await;
    // The browser's own check would stop an address without "@" before the server sees it.
    b.client
        .execute("document.getElementById('email').type = 'text';", vec![])
        .await
        .unwrap();
    b.click("create-user").await;
    let error = b.text("email-error").await;
    assert_eq!(
        error,
        "An email address has an @ in it, as in ada@example.org."
    );
    b.client.goto(&p.url("/admin/users?q=root")).await.unwrap();
    assert_eq!(b.text("user-count").await, "1 user matches “root”.");
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_step_setup_has_a_qr_code_a_way_out_and_codes_to_keep() {
    use stackspin_identity::totp;
    let p = start(fast_options()).await;
    p.user("root@example.org", true).await;
    p.user("grace@example.org", false).await;
    p.store
        .set_setting(stackspin_web::MFA_SETTING, "everyone")
        .await
        .unwrap();
    let b = Browser::start().await;

    // Required for everyone: the forced setup page shows a QR code of the enrolment address
    // and a way out.
    b.log_in(&p, "grace@example.org", PASSWORD).await;
    let secret = b.text("totp-secret").await;
    let uri = b
        .client
        .execute(
            "return document.getElementById('totp-uri').getAttribute('href');",
            vec![],
        )
        .await
        .unwrap();
    let uri = uri.as_str().unwrap().to_owned();
    assert!(
        uri.starts_with("otpauth://totp/") && uri.contains(&secret),
        "{uri}"
    );
    let shown = b
        .client
        .execute(
            "const f = document.getElementById('totp-qr'); const s = f.querySelector('svg'); \
             const r = s.getBoundingClientRect(); \
             return [s.outerHTML, r.width, f.getAttribute('aria-label')];",
            vec![],
        )
        .await
        .unwrap();
    // The drawing is the QR code of exactly that address (the same encoder, as modules).
    let expected = qrcode::QrCode::with_error_correction_level(uri.as_bytes(), qrcode::EcLevel::M)
        .unwrap()
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .build();
    let path_of = |svg: &str| {
        let i = svg.find(" d=\"").unwrap();
        svg[i..].split('"').nth(1).unwrap().to_owned()
    };
    assert_eq!(path_of(shown[0].as_str().unwrap()), path_of(&expected));
    assert!(shown[1].as_f64().unwrap() >= 200.0, "{shown}");
    assert!(shown[2].as_str().unwrap().contains("QR code"));
    b.click("setup-logout").await;
    b.wait_for_text("You are logged out").await;

    // Setting it up ends with recovery codes that can be saved as a file.
    b.log_in(&p, "grace@example.org", PASSWORD).await;
    let secret = b.text("totp-secret").await;
    let key = totp::base32_decode(&secret).unwrap();
    let step = chrono::Utc::now().timestamp() / totp::STEP_SECONDS;
    b.fill("code", &totp::code_at(&key, step)).await;
    b.click("enrol-submit").await;
    let codes = b.text("recovery-codes").await;
    let link = b
        .client
        .execute(
            "const a = document.getElementById('download-codes'); \
             return [a.getAttribute('href'), a.getAttribute('download')];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(link[1], "stackspin-recovery-codes.txt");
    let href = link[0].as_str().unwrap();
    let body = href.strip_prefix("data:text/plain;charset=utf-8,").unwrap();
    let text: String = url::form_urlencoded::parse(format!("t={body}").as_bytes())
        .next()
        .unwrap()
        .1
        .into_owned();
    let lines: Vec<&str> = codes.lines().map(str::trim).collect();
    assert_eq!(lines.len(), 10, "{codes}");
    for code in lines {
        assert!(text.contains(code), "{code} not in the download");
    }
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_mail_the_page_says_so_and_a_link_can_be_handed_over() {
    // No outgoing mail configured.
    let p = start(fast_options()).await;
    p.user("root@example.org", true).await;
    let b = Browser::start().await;
    b.log_in(&p, "root@example.org", PASSWORD).await;
    b.wait_for_text("Signed in as").await;
    b.client.goto(&p.url("/admin/users/new")).await.unwrap();
    b.fill("name", "Grace Hopper").await;
    b.fill("email", "grace@example.org").await;
    b.click("create-user").await;
    let notice = b.text("created-notice").await;
    assert!(
        notice.contains("outgoing mail is not set up, so no invitation was sent"),
        "{notice}"
    );
    assert!(!notice.contains("on its way"), "{notice}");

    // Their page says mail is off, offers no "send", and hands over a single-use link.
    let grace = user_id(&p, "grace@example.org").await;
    b.client
        .goto(&p.url(&format!("/admin/users/{grace}")))
        .await
        .unwrap();
    assert!(b.text("mail-off").await.contains("not set up"));
    assert!(
        b.client
            .find(fantoccini::Locator::Id("send-link"))
            .await
            .is_err()
    );
    b.click("handover-link").await;
    b.wait_for_text("id=\"link-value\"").await;
    let first = b
        .client
        .execute(
            "return document.getElementById('link-value').value;",
            vec![],
        )
        .await
        .unwrap();
    let first = first.as_str().unwrap().to_owned();
    // A second link replaces the first: only the link last handed out works.
    b.client
        .goto(&p.url(&format!("/admin/users/{grace}")))
        .await
        .unwrap();
    b.click("handover-link").await;
    b.wait_for_text("id=\"link-value\"").await;
    let link = b
        .client
        .execute(
            "return document.getElementById('link-value').value;",
            vec![],
        )
        .await
        .unwrap();
    let link = link.as_str().unwrap().to_owned();
    assert!(
        link.starts_with(&format!("{}/reset?token=", p.base)),
        "{link}"
    );
    assert_ne!(link, first);
    b.close().await;

    let g = Browser::start().await;
    g.client.goto(&first).await.unwrap();
    g.wait_for_text("This link does not work any more").await;
    g.client.goto(&link).await.unwrap();
    g.wait_for_text("Welcome to Stackspin").await;
    g.fill("password", "violet tractor Lisbon harbour").await;
    g.fill("confirm", "violet tractor Lisbon harbour").await;
    g.click("reset-submit").await;
    g.wait_for_text("Your password is set").await;
    g.log_in(&p, "grace@example.org", "violet tractor Lisbon harbour")
        .await;
    g.wait_for_text("Signed in as").await;
    g.close().await;

    let kinds: Vec<String> = p
        .store
        .audit_events(&stackspin_storage::AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == "invitation.link_created")
            .count(),
        2,
        "{kinds:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_resends_an_invitation_and_sends_a_reset_by_mail() {
    let smtp = SmtpServer::start().await;
    let p = start_with(
        smtp.settings(),
        stackspin_web::ProviderOptions {
            mail_poll_interval: std::time::Duration::from_millis(100),
            ..fast_options()
        },
    )
    .await;
    p.user("root@example.org", true).await;
    p.user("ada@example.org", false).await;
    let b = Browser::start().await;
    b.log_in(&p, "root@example.org", PASSWORD).await;
    b.wait_for_text("Signed in as").await;

    // Someone who has a password gets a reset link by mail, sent by the admin.
    let ada = user_id(&p, "ada@example.org").await;
    b.client
        .goto(&p.url(&format!("/admin/users/{ada}")))
        .await
        .unwrap();
    assert_eq!(b.text("send-link").await, "Send a password reset");
    b.click("send-link").await;
    let notice = b.text("edit-notice").await;
    assert!(notice.contains("password reset link for ada@example.org is queued"));
    let mail = smtp.wait_for("ada@example.org").await;
    assert!(mail.contains("Reset your Stackspin password"), "{mail}");
    let link = link_in(&mail);
    b.close().await;
    let a = Browser::start().await;
    a.client.goto(&link).await.unwrap();
    a.wait_for_text("Choose a new password").await;
    a.close().await;
    let kinds: Vec<String> = p
        .store
        .audit_events(&stackspin_storage::AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(
        kinds.contains(&"recovery.sent_by_admin".to_owned()),
        "{kinds:?}"
    );
}

/// Every page an admin or member meets, at a desktop width and a phone width: axe-core finds
/// no WCAG 2.2 AA violation, and no page is wider than the screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_passes_axe_and_fits_a_phone() {
    let p = start(fast_options()).await;
    let root = p.user("root@example.org", true).await;
    let ada = p.user("ada@example.org", false).await;
    p.app(AppSpec::default()).await;
    for i in 0..3 {
        p.user(&format!("member{i:02}@example.org"), false).await;
    }
    // Every page with the organisation's (long) name and a logo in its header.
    p.store
        .set_org_name(
            stackspin_domain::brand::OrgName::parse("Stichting Vrije Journalistiek Amsterdam")
                .unwrap()
                .as_ref(),
        )
        .await
        .unwrap();
    let logo = stackspin_domain::brand::Logo::parse(
        br##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 32"><rect width="64" height="32" fill="#264653"/></svg>"##.to_vec(),
    )
    .unwrap();
    p.store.set_logo(Some(&logo)).await.unwrap();
    let b = Browser::start().await;
    let mut pages = vec!["/login".to_owned(), "/recover".to_owned()];
    let signed_in = [
        "/".to_owned(),
        "/account".to_owned(),
        "/account/mfa".to_owned(),
        "/admin/users".to_owned(),
        "/admin/users/new".to_owned(),
        format!("/admin/users/{}", ada.id),
        format!("/admin/users/{}/delete", ada.id),
        format!("/admin/users/{}/delete", root.id),
        "/admin/access".to_owned(),
        "/admin/catalog".to_owned(),
        "/admin/backups".to_owned(),
        "/admin/status".to_owned(),
        "/admin/apps".to_owned(),
        "/admin/apps/new".to_owned(),
        "/admin/apps/wiki".to_owned(),
        "/admin/audit".to_owned(),
        "/admin/settings".to_owned(),
        "/logout".to_owned(),
        "/no/such/page".to_owned(),
    ];
    let mut problems = vec![];
    for (width, height) in [(1280, 900), (390, 844)] {
        b.resize(width, height).await;
        for path in &pages {
            b.client.goto(&p.url(path)).await.unwrap();
            for v in b.axe_violations().await {
                problems.push(format!("{width}px {path}: {v}"));
            }
            if let Some(over) = b.overflow().await {
                problems.push(format!("{width}px {path}: {over}"));
            }
        }
    }
    b.log_in(&p, "root@example.org", PASSWORD).await;
    b.wait_for_text("Signed in as").await;
    pages.clear();
    for (width, height) in [(1280, 900), (390, 844)] {
        b.resize(width, height).await;
        for path in &signed_in {
            b.client.goto(&p.url(path)).await.unwrap();
            for v in b.axe_violations().await {
                problems.push(format!("{width}px {path}: {v}"));
            }
            if let Some(over) = b.overflow().await {
                problems.push(format!("{width}px {path}: {over}"));
            }
        }
    }
    // The current page is marked in the navigation, and the tab has an icon.
    b.client.goto(&p.url("/admin/users")).await.unwrap();
    let marked = b
        .client
        .execute(
            "return [...document.querySelectorAll('nav a[aria-current=page]')].map(a => a.id) \
             .concat([document.querySelector('link[rel=icon]').getAttribute('href')]);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(marked, serde_json::json!(["nav-users", "/favicon.svg"]));
    b.close().await;
    let icon = reqwest::get(p.url("/favicon.svg")).await.unwrap();
    assert_eq!(icon.headers()["content-type"], "image/svg+xml");
    assert!(icon.text().await.unwrap().starts_with("<svg"));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Reached from an app, the sign-in page says which app is asking; on its own it does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sign_in_page_says_which_app_is_asking() {
    let p = start(fast_options()).await;
    p.user("ada@example.org", false).await;
    let wiki = p.app(AppSpec::default()).await;
    let b = Browser::start().await;
    b.client
        .goto(&authorize_url(&p, &wiki, &pkce(), &[]))
        .await
        .unwrap();
    assert_eq!(
        b.text("login-asking").await,
        "Log in with your organisation’s account to continue to WIKI."
    );
    // A wrong password keeps saying it.
    b.fill("email", "ada@example.org").await;
    b.fill("password", "not the password at all").await;
    b.click("login-submit").await;
    b.wait_for_text("login-error").await;
    assert!(b.text("login-asking").await.contains("WIKI"));
    b.client.goto(&p.url("/login")).await.unwrap();
    b.wait_for_text("login-submit").await;
    assert!(
        b.client
            .find(fantoccini::Locator::Id("login-asking"))
            .await
            .is_err()
    );
    b.close().await;
}

/// Sessions show a readable device, not a cut User-Agent string.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_name_the_device() {
    let p = start(fast_options()).await;
    p.user("ada@example.org", false).await;
    let b = Browser::start().await;
    b.log_in(&p, "ada@example.org", PASSWORD).await;
    b.wait_for_text("Signed in as").await;
    b.client.goto(&p.url("/account")).await.unwrap();
    let sessions = b.text("sessions").await;
    // Headless Chromium on this Linux machine.
    assert!(sessions.contains("Chrome on Linux"), "{sessions}");
    assert!(!sessions.contains("Mozilla/5.0"), "{sessions}");
    b.close().await;
}

/// The organisation's name and logo, set on the Settings page, head every page (signed in
/// and out) and name the sender and subject of the mails; a file that is not an image, or an
/// SVG with a script, is refused and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_organisation_name_and_logo_are_on_every_page_and_in_mails() {
    let smtp = SmtpServer::start().await;
    let p = start_with(
        smtp.settings(),
        stackspin_web::ProviderOptions {
            mail_poll_interval: std::time::Duration::from_millis(100),
            ..fast_options()
        },
    )
    .await;
    p.user("root@example.org", true).await;
    p.user("ada@example.org", false).await;
    let files = tempfile::tempdir().unwrap();
    let logo = files.path().join("logo.svg");
    std::fs::write(
        &logo,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 32"><rect width="64" height="32" fill="#c0392b"/></svg>"##,
    )
    .unwrap();
    let not_image = files.path().join("minutes.txt");
    std::fs::write(&not_image, "Minutes of the general assembly").unwrap();
    let scripted = files.path().join("evil.svg");
    std::fs::write(&scripted, r#"<svg onload="alert(1)"></svg>"#).unwrap();

    let b = Browser::start().await;
    b.log_in(&p, "root@example.org", PASSWORD).await;
    b.wait_for_text("Signed in as").await;
    // Before: the product's name, no logo.
    assert_eq!(b.text("brand-name").await, "Stackspin");

    b.client.goto(&p.url("/admin/settings")).await.unwrap();
    b.fill("org-name", "Vrije Radio Utrecht").await;
    upload(&b, "org-logo", &logo).await;
    b.click("org-submit").await;
    assert_eq!(b.text("settings-notice").await, "Saved.");
    assert_eq!(b.text("brand-name").await, "Vrije Radio Utrecht");
    b.screenshot("organisation-settings").await;
    for path in [
        "/",
        "/account",
        "/admin/users",
        "/admin/audit",
        "/no-such-page",
    ] {
        b.client.goto(&p.url(path)).await.unwrap();
        assert_eq!(b.text("brand-name").await, "Vrije Radio Utrecht", "{path}");
        let src = b
            .client
            .find(fantoccini::Locator::Css("#brand img"))
            .await
            .unwrap()
            .attr("src")
            .await
            .unwrap()
            .unwrap();
        assert!(src.contains("/brand/logo?v="), "{path}: {src}");
    }
    // The logo is served as an image, inert when opened on its own.
    let resp = reqwest::get(p.url("/brand/logo")).await.unwrap();
    assert_eq!(resp.headers()["content-type"], "image/svg+xml");
    let csp = resp.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("sandbox"), "{csp}");
    assert!(resp.text().await.unwrap().contains("#c0392b"));

    // Refused files change nothing, and say why.
    for (file, says) in [
        (&not_image, "must be a PNG, JPEG, WebP, GIF or SVG"),
        (&scripted, "contains a script"),
    ] {
        b.client.goto(&p.url("/admin/settings")).await.unwrap();
        b.fill("org-name", "Someone Else").await;
        upload(&b, "org-logo", file).await;
        b.click("org-submit").await;
        let notice = b.text("settings-notice").await;
        assert!(notice.contains(says), "{notice}");
        assert_eq!(b.text("brand-name").await, "Vrije Radio Utrecht");
    }

    // Signed out, the login page shows the organisation too.
    let other = Browser::start().await;
    other.client.goto(&p.url("/login")).await.unwrap();
    assert_eq!(other.text("brand-name").await, "Vrije Radio Utrecht");
    other.screenshot("organisation-login").await;
    other.close().await;

    // Mails come from the organisation.
    let ada = user_id(&p, "ada@example.org").await;
    b.client
        .goto(&p.url(&format!("/admin/users/{ada}")))
        .await
        .unwrap();
    b.click("send-link").await;
    let mail = smtp.wait_for("ada@example.org").await;
    assert!(
        mail.contains("Subject: Reset your Vrije Radio Utrecht password"),
        "{mail}"
    );
    assert!(
        mail.contains("From: \"Vrije Radio Utrecht\" <stackspin@example.org>")
            || mail.contains("From: Vrije Radio Utrecht <stackspin@example.org>"),
        "{mail}"
    );

    // Removing the logo and clearing the name go back to the plain product.
    b.client.goto(&p.url("/admin/settings")).await.unwrap();
    b.fill("org-name", "").await;
    b.click("remove-logo").await;
    b.click("org-submit").await;
    assert_eq!(b.text("settings-notice").await, "Saved.");
    assert_eq!(b.text("brand-name").await, "Stackspin");
    assert!(
        b.client
            .find(fantoccini::Locator::Css("#brand img"))
            .await
            .is_err()
    );
    let gone = reqwest::get(p.url("/brand/logo")).await.unwrap();
    assert_eq!(gone.status(), 404);
    // Saving again with nothing changed says so, and records nothing.
    b.click("org-submit").await;
    b.wait_for_url("org=unchanged").await;
    assert_eq!(b.text("settings-notice").await, "Nothing changed.");
    b.close().await;

    let changes: Vec<serde_json::Value> = p
        .store
        .audit_events(&stackspin_storage::AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "settings.changed")
        .map(|e| e.detail)
        .collect();
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert!(
        changes.iter().any(|d| d["logo"] == "removed"),
        "{changes:?}"
    );
    assert!(
        changes
            .iter()
            .any(|d| d["org_name"]["to"] == "Vrije Radio Utrecht"),
        "{changes:?}"
    );
}

async fn upload(b: &Browser, id: &str, file: &std::path::Path) {
    b.client
        .find(fantoccini::Locator::Id(id))
        .await
        .unwrap()
        .send_keys(&file.display().to_string())
        .await
        .unwrap();
}

/// The users list as an admin of 50 people needs it: numbers sort by value (member2 before
/// member10), each row says whether two-step verification is on, when the person last
/// signed in and which apps they may use, and "all users matching" applies a role to every
/// page of a search at once, without script.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_list_shows_what_admins_ask_and_selects_all() {
    let p = start(fast_options()).await;
    p.user("root@example.org", true).await;
    p.app(AppSpec::default()).await;
    for i in 1..=55 {
        p.store
            .create_user(&NewUser {
                email: Email::parse(&format!("member{i}@example.org")).unwrap(),
                name: UserName::parse(&format!("Member {i}")).unwrap(),
                password_hash: None,
                is_admin: false,
            })
            .await
            .unwrap();
    }
    let b = Browser::start().await;
    b.log_in(&p, "root@example.org", PASSWORD).await;
    b.wait_for_text("Signed in as").await;
    b.client.goto(&p.url("/admin/users")).await.unwrap();
    let column = |n: usize| {
        let b = &b;
        async move {
            let mut out = vec![];
            for cell in b
                .client
                .find_all(fantoccini::Locator::Css(&format!(
                    "#users tbody tr td:nth-child({n})"
                )))
                .await
                .unwrap()
            {
                out.push(cell.text().await.unwrap());
            }
            out
        }
    };
    let emails = column(2).await;
    assert_eq!(
        emails[..4],
        [
            "member1@example.org",
            "member2@example.org",
            "member3@example.org",
            "member4@example.org"
        ]
    );
    let headers: Vec<String> = {
        let mut out = vec![];
        for th in b
            .client
            .find_all(fantoccini::Locator::Css("#users thead th"))
            .await
            .unwrap()
        {
            out.push(th.text().await.unwrap());
        }
        out
    };
    for wanted in ["Two-step", "Last sign-in", "Apps"] {
        assert!(headers.iter().any(|h| h == wanted), "{headers:?}");
    }
    // The second page ends with root, who signed in a moment ago; members never did.
    b.client.goto(&p.url("/admin/users?page=2")).await.unwrap();
    let emails = column(2).await;
    let last = emails.len() - 1;
    assert_eq!(emails[last], "root@example.org");
    assert_eq!(emails[0], "member51@example.org");
    let signed_in = column(7).await;
    assert!(signed_in[last].ends_with("UTC"), "{signed_in:?}");
    assert_eq!(signed_in[0], "Never");
    assert_eq!(column(6).await[last], "Off");
    assert_eq!(column(8).await[0], "WIKI");

    // Everyone matching "member", on both pages, loses access to the wiki in one go.
    b.fill("q", "member").await;
    b.click("search-submit").await;
    b.wait_for_url("q=member").await;
    assert_eq!(b.text("user-count").await, "55 users match “member”.");
    b.select("batch-scope", "all").await;
    b.select("batch-action", "role").await;
    b.select("batch-role", "none").await;
    b.click("batch-submit").await;
    assert!(
        b.text("changed-notice")
            .await
            .starts_with("Changed the role of 55 users.")
    );
    assert_eq!(role_in(&p, "member1@example.org").await, Role::None);
    assert_eq!(role_in(&p, "member55@example.org").await, Role::None);
    assert_eq!(role_in(&p, "root@example.org").await, Role::User);
    b.client
        .goto(&p.url("/admin/users?q=member"))
        .await
        .unwrap();
    assert_eq!(column(8).await[0], "None");
    b.screenshot("users-list-columns").await;
    b.close().await;
}

/// The setup admin's first-run checklist ticks each step from the platform's real state:
/// the setup password replaced, a test mail accepted by the mail server, two-step on, a
/// second person, a first app. It can be hidden, and other people never see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_setup_admin_has_a_first_run_checklist() {
    let smtp = SmtpServer::start().await;
    let p = start_with(smtp.settings(), fast_options()).await;
    let setup_password = "setup-password-printed-at-install";
    let hash = cheap_params()
        .hash(&stackspin_domain::password::Password::new(setup_password).unwrap())
        .unwrap();
    let admin = p
        .store
        .bootstrap_admin(
            &NewUser {
                email: Email::parse("admin@example.org").unwrap(),
                name: UserName::parse("Setup Admin").unwrap(),
                password_hash: Some(hash),
                is_admin: true,
            },
            setup_password,
        )
        .await
        .unwrap()
        .unwrap();
    let b = Browser::start().await;
    b.log_in(&p, "admin@example.org", setup_password).await;
    b.wait_for_text("Signed in as").await;
    assert!(b.text("checklist").await.contains("0 of 5 done"));
    for id in [
        "step-password",
        "step-mail",
        "step-two-step",
        "step-people",
        "step-apps",
    ] {
        assert!(!step_done(&b, id).await, "{id}");
    }
    b.screenshot("checklist-new").await;

    // 1. A password of one's own.
    b.client.goto(&p.url("/account")).await.unwrap();
    b.fill("current", setup_password).await;
    b.fill("password", "violet mountain ferry 1987 quietly")
        .await;
    b.fill("confirm", "violet mountain ferry 1987 quietly")
        .await;
    b.click("password-submit").await;
    b.wait_for_text("Your password is changed").await;
    // 2. A test mail the server accepts.
    b.client.goto(&p.url("/admin/settings")).await.unwrap();
    b.fill("to", "admin@example.org").await;
    b.click("test-mail-submit").await;
    b.wait_for_text("Sent a test email").await;
    // 3-5. Two-step on, a second person, a first app (set directly: their own pages have
    // their own tests).
    p.store
        .set_totp(admin.id, Some("JBSWY3DPEHPK3PXP"), &[])
        .await
        .unwrap();
    p.user("ada@example.org", false).await;
    b.client.goto(&p.url("/")).await.unwrap();
    assert!(b.text("checklist").await.contains("4 of 5 done"));
    assert!(!step_done(&b, "step-apps").await);
    p.app(AppSpec::default()).await;
    b.client.goto(&p.url("/")).await.unwrap();
    assert!(b.text("checklist").await.contains("5 of 5 done"));
    for id in [
        "step-password",
        "step-mail",
        "step-two-step",
        "step-people",
        "step-apps",
    ] {
        assert!(step_done(&b, id).await, "{id}");
    }
    b.click("checklist-hide").await;
    // The start page comes back to the same address, so wait for the list to go rather
    // than for the page (the old one would answer at once).
    let mut gone = false;
    for _ in 0..100 {
        if b.client
            .find(fantoccini::Locator::Id("checklist"))
            .await
            .is_err()
        {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(gone, "the checklist is still shown after hiding it");
    b.client.goto(&p.url("/")).await.unwrap();
    b.wait_for_text("Your apps").await;
    assert!(
        b.client
            .find(fantoccini::Locator::Id("checklist"))
            .await
            .is_err(),
        "hidden for good"
    );
    b.close().await;

    // Someone who is not an admin never sees it.
    let other = Browser::start().await;
    other.log_in(&p, "ada@example.org", PASSWORD).await;
    other.wait_for_text("Signed in as").await;
    assert!(
        other
            .client
            .find(fantoccini::Locator::Id("checklist"))
            .await
            .is_err()
    );
    other.close().await;
}

async fn step_done(b: &Browser, id: &str) -> bool {
    b.client
        .find(fantoccini::Locator::Id(id))
        .await
        .unwrap()
        .attr("class")
        .await
        .unwrap()
        .unwrap_or_default()
        == "step-done"
}

/// Mail that fails (the server is down), not only mail that is off: the person's page says
/// the invitation has not left, why, and when it is tried again; once the server is up, a
/// new invitation sent from the page is reported as accepted by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_mail_fails_the_persons_page_says_so() {
    let mut smtp = SmtpServer::planned();
    let p = start_with(
        smtp.settings(),
        stackspin_web::ProviderOptions {
            mail_poll_interval: std::time::Duration::from_millis(100),
            // The failed invitation waits; the one sent once the server is up goes at once.
            mail_retry_base: std::time::Duration::from_secs(600),
            ..fast_options()
        },
    )
    .await;
    p.user("root@example.org", true).await;
    let b = Browser::start().await;
    b.log_in(&p, "root@example.org", PASSWORD).await;
    b.wait_for_text("Signed in as").await;
    b.client.goto(&p.url("/admin/users/new")).await.unwrap();
    b.fill("name", "Grace Hopper").await;
    b.fill("email", "grace@example.org").await;
    b.click("create-user").await;
    b.wait_for_text("Added grace@example.org").await;
    for _ in 0..100 {
        let m = p.store.last_mail_to("grace@example.org").await.unwrap();
        if m.is_some_and(|m| m.attempts > 0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let grace = user_id(&p, "grace@example.org").await;
    b.client
        .goto(&p.url(&format!("/admin/users/{grace}")))
        .await
        .unwrap();
    let said = b.text("last-mail").await;
    assert!(
        said.contains("could not be sent yet (1 attempt)") && said.contains("Next try at"),
        "{said}"
    );
    let class = b
        .client
        .find(fantoccini::Locator::Id("last-mail"))
        .await
        .unwrap()
        .attr("class")
        .await
        .unwrap();
    assert_eq!(class.as_deref(), Some("error"));
    b.screenshot("person-mail-failing").await;

    smtp.run().await;
    b.click("send-link").await;
    b.wait_for_text("is queued").await;
    smtp.wait_for("grace@example.org").await;
    for _ in 0..100 {
        b.client
            .goto(&p.url(&format!("/admin/users/{grace}")))
            .await
            .unwrap();
        if b.text("last-mail")
            .await
            .contains("was accepted by the mail server")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        b.text("last-mail")
            .await
            .contains("“You are invited to Stackspin”, was accepted by the mail server")
    );
    b.close().await;
}

/// Pages that are not tied to a session (messages, "Page not found", "Nothing selected",
/// confirmations, two-step pages) show the navigation to someone signed in, so none is a
/// dead end; signed out, they show none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_and_confirmation_pages_have_the_navigation() {
    let p = start(fast_options()).await;
    p.user("root@example.org", true).await;
    p.user("ada@example.org", false).await;
    let b = Browser::start().await;
    b.client.goto(&p.url("/no-such-page")).await.unwrap();
    b.wait_for_text("Page not found").await;
    assert!(
        b.client
            .find(fantoccini::Locator::Id("nav-apps"))
            .await
            .is_err(),
        "no navigation for someone signed out"
    );
    b.log_in(&p, "root@example.org", PASSWORD).await;
    b.wait_for_text("Signed in as").await;
    let has_nav = |b: &Browser| {
        let client = b.client.clone();
        async move {
            client
                .find(fantoccini::Locator::Id("nav-users"))
                .await
                .is_ok()
                && client
                    .find(fantoccini::Locator::Id("nav-logout"))
                    .await
                    .is_ok()
        }
    };
    b.client.goto(&p.url("/no-such-page")).await.unwrap();
    b.wait_for_text("Page not found").await;
    assert!(has_nav(&b).await, "404");
    // "Nothing selected": a batch action with nobody ticked.
    b.client.goto(&p.url("/admin/users")).await.unwrap();
    b.select("batch-action", "delete").await;
    b.click("batch-submit").await;
    b.wait_for_text("Nothing selected").await;
    assert!(has_nav(&b).await, "nothing selected");
    // A confirmation: deleting someone.
    let ada = user_id(&p, "ada@example.org").await;
    b.client
        .goto(&p.url(&format!("/admin/users/{ada}")))
        .await
        .unwrap();
    b.click("delete-user").await;
    b.wait_for_text("cannot be undone").await;
    assert!(has_nav(&b).await, "confirmation");
    // Two-step verification, chosen (not forced).
    b.client.goto(&p.url("/account/mfa")).await.unwrap();
    b.wait_for_text("Set up two-step verification").await;
    assert!(has_nav(&b).await, "two-step setup");
    // The navigation's "Log out" goes to the page that asks first.
    b.click("nav-logout").await;
    b.wait_for_url("/logout").await;
    b.click("logout-confirm").await;
    b.wait_for_text("You have been logged out").await;
    b.close().await;
}
