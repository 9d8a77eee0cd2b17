//! Regression tests for the security and reliability probe (issue 8): throttling that a
//! burst cannot outrun and strangers cannot turn against the owner, return addresses that
//! never leave the site, and bad input that never gets a 500.
#![allow(clippy::unwrap_used)]

mod support;

use stackspin_domain::settings::{RawSettings, Settings};
use stackspin_web::Application;
use support::*;

/// The login form's CSRF token for this browser.
async fn csrf(p: &Provider, b: &reqwest::Client) -> String {
    let page = b
        .get(p.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    hidden_value(&page, "csrf")
}

/// One sign-in POST, optionally as a client behind a proxy (`X-Forwarded-For`).
async fn post_login(
    p: &Provider,
    b: &reqwest::Client,
    csrf: &str,
    email: &str,
    password: &str,
    return_to: &str,
    forwarded_for: Option<&str>,
) -> reqwest::Response {
    let mut req = b.post(p.url("/login")).form(&[
        ("email", email),
        ("password", password),
        ("csrf", csrf),
        ("return_to", return_to),
    ]);
    if let Some(xff) = forwarded_for {
        req = req.header("x-forwarded-for", xff);
    }
    req.send().await.unwrap()
}

fn behind_proxy() -> RawSettings {
    RawSettings {
        trusted_proxies: Some("127.0.0.1".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_burst_of_wrong_passwords_is_checked_at_most_the_limit() {
    let p = start(fast_options()).await;
    p.user("ada@example.org", false).await;
    let b = browser();
    let token = csrf(&p, &b).await;
    let mut tasks = Vec::new();
    for _ in 0..300 {
        let (b, token, url) = (b.clone(), token.clone(), p.url("/login"));
        tasks.push(tokio::spawn(async move {
            b.post(url)
                .form(&[
                    ("email", "ada@example.org"),
                    ("password", "not the password"),
                    ("csrf", token.as_str()),
                    ("return_to", "/"),
                ])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut checked = 0;
    for t in tasks {
        match t.await.unwrap() {
            401 => checked += 1,
            429 => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        checked <= 10,
        "{checked} of 300 concurrent guesses were checked"
    );
    let failures = p
        .store
        .audit_events(&stackspin_storage::AuditFilter {
            kind: Some("login.failure".into()),
            limit: 500,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(failures.len() <= 10, "{} failures audited", failures.len());
}

#[tokio::test]
async fn replicas_share_one_limit() {
    let p = start(fast_options()).await;
    p.user("ada@example.org", false).await;
    // A second server on the same database, as a second replica would be.
    let settings = Settings::resolve(RawSettings {
        listen: Some("127.0.0.1:0".into()),
        ..Default::default()
    })
    .unwrap();
    let second = Application::build_with(&settings, p.store.clone(), fast_options())
        .await
        .unwrap();
    let second_url = second.public_url().to_string();
    tokio::spawn(second.run_until_stopped(std::future::pending()));
    let (b1, b2) = (browser(), browser());
    let t1 = csrf(&p, &b1).await;
    let page = b2
        .get(format!("{second_url}/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let t2 = hidden_value(&page, "csrf");
    let mut statuses = Vec::new();
    for i in 0..12 {
        let status = if i % 2 == 0 {
            post_login(&p, &b1, &t1, "ada@example.org", "wrong!", "/", None)
                .await
                .status()
        } else {
            b2.post(format!("{second_url}/login"))
                .form(&[
                    ("email", "ada@example.org"),
                    ("password", "wrong!"),
                    ("csrf", t2.as_str()),
                    ("return_to", "/"),
                ])
                .send()
                .await
                .unwrap()
                .status()
        };
        statuses.push(status.as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(&statuses[10..], &[429, 429]);
}

#[tokio::test]
async fn strangers_cannot_lock_the_owner_out() {
    let p = start_with(behind_proxy(), fast_options()).await;
    p.user("ada@example.org", false).await;
    let stranger = browser();
    let token = csrf(&p, &stranger).await;
    for _ in 0..12 {
        post_login(
            &p,
            &stranger,
            &token,
            "ada@example.org",
            "guess",
            "/",
            Some("198.51.100.66"),
        )
        .await;
    }
    // Reset requests for her address never count against her sign-ins.
    let page = stranger
        .get(p.url("/recover"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let rtoken = hidden_value(&page, "csrf");
    for _ in 0..12 {
        stranger
            .post(p.url("/recover"))
            .header("x-forwarded-for", "198.51.100.66")
            .form(&[("email", "ada@example.org"), ("csrf", rtoken.as_str())])
            .send()
            .await
            .unwrap();
    }
    let blocked = post_login(
        &p,
        &stranger,
        &token,
        "ada@example.org",
        "guess",
        "/",
        Some("198.51.100.66"),
    )
    .await;
    assert_eq!(blocked.status(), 429, "the guesser is stopped");

    // The owner, from her own address, is not.
    let owner = browser();
    let t = csrf(&p, &owner).await;
    let ok = post_login(
        &p,
        &owner,
        &t,
        "ada@example.org",
        PASSWORD,
        "/",
        Some("203.0.113.5"),
    )
    .await;
    assert_eq!(ok.status(), 303, "the owner signs in");

    // Guessing from a hundred addresses blocks browsers the account never used, but not
    // the one she signed in with.
    for i in 0..100 {
        let xff = format!("198.51.100.{}", i + 100);
        post_login(
            &p,
            &stranger,
            &token,
            "ada@example.org",
            "guess",
            "/",
            Some(&xff),
        )
        .await;
    }
    let fresh = browser();
    let tf = csrf(&p, &fresh).await;
    let r = post_login(
        &p,
        &fresh,
        &tf,
        "ada@example.org",
        PASSWORD,
        "/",
        Some("203.0.113.9"),
    )
    .await;
    assert_eq!(
        r.status(),
        429,
        "a new browser waits out the distributed guessing"
    );
    let t = csrf(&p, &owner).await;
    let ok = post_login(
        &p,
        &owner,
        &t,
        "ada@example.org",
        PASSWORD,
        "/",
        Some("203.0.113.5"),
    )
    .await;
    assert_eq!(ok.status(), 303, "her known browser still signs in");
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    // No trusted proxies: every client behind the header is the peer, one address.
    let p = start(fast_options()).await;
    p.user("ada@example.org", false).await;
    let b = browser();
    let token = csrf(&p, &b).await;
    for i in 0..10 {
        let xff = format!("198.51.100.{i}");
        post_login(&p, &b, &token, "ada@example.org", "guess", "/", Some(&xff)).await;
    }
    let r = post_login(
        &p,
        &b,
        &token,
        "ada@example.org",
        "guess",
        "/",
        Some("198.51.100.77"),
    )
    .await;
    assert_eq!(r.status(), 429, "a forged header does not buy new attempts");
}

#[tokio::test]
async fn return_addresses_never_leave_the_site() {
    let p = start(fast_options()).await;
    p.user("ada@example.org", false).await;
    for (to, expect) in [
        ("/\\evil.example/", "/"),
        ("/%2F/evil.example/", "/"),
        ("/%09/evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/account", "/account"),
    ] {
        let b = browser();
        let token = csrf(&p, &b).await;
        let r = post_login(&p, &b, &token, "ada@example.org", PASSWORD, to, None).await;
        assert_eq!(r.status(), 303, "{to:?}");
        assert_eq!(location(&r), expect, "{to:?}");
    }
    // The probe's value: `%09` in the login link arrives as a tab.
    let b = browser();
    let r = b
        .get(p.url("/login?return_to=/%09/evil.example/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(!r.text().await.unwrap().contains("evil.example"));
}

#[tokio::test]
async fn control_characters_in_return_to_get_400_and_no_session() {
    let p = start(fast_options()).await;
    p.user("ada@example.org", false).await;
    for to in [
        "/\t/evil.example/",
        "/a\nb",
        "/a\0",
        "/a\u{7f}",
        "/a\r\nSet-Cookie: x=y",
    ] {
        let b = browser();
        let token = csrf(&p, &b).await;
        let r = post_login(&p, &b, &token, "ada@example.org", PASSWORD, to, None).await;
        assert_eq!(r.status(), 400, "{to:?}");
        assert!(
            r.headers()
                .get_all("set-cookie")
                .iter()
                .all(|c| !c.to_str().unwrap().contains("session")),
            "no session for {to:?}"
        );
        assert!(!is_signed_in(&p, &b).await);
    }
    // The two-step setup page, reached with such a value, refuses it the same way.
    let b = browser();
    assert_eq!(
        sign_in(&p, &b, "ada@example.org", PASSWORD).await.status(),
        303
    );
    let r = b
        .get(p.url("/account/mfa?return_to=%2F%09%2Fevil.example%2F"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn the_csrf_cookie_changes_at_sign_in() {
    let p = start(fast_options()).await;
    p.user("ada@example.org", false).await;
    let b = browser();
    let before = csrf(&p, &b).await;
    let r = post_login(&p, &b, &before, "ada@example.org", PASSWORD, "/", None).await;
    assert_eq!(r.status(), 303);
    let page = b
        .get(p.url("/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let after = hidden_value(&page, "csrf");
    assert_ne!(
        before, after,
        "a token known before sign-in is not valid after it"
    );
}

#[tokio::test]
async fn an_office_behind_one_address_is_not_blocked_by_its_own_sign_ins() {
    let p = start(fast_options()).await;
    for i in 0..120 {
        p.user(&format!("person{i}@example.org"), false).await;
    }
    for i in 0..120 {
        let b = browser();
        let r = sign_in(&p, &b, &format!("person{i}@example.org"), PASSWORD).await;
        assert_eq!(r.status(), 303, "sign-in {i} from the shared address");
    }
}
