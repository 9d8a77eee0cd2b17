//! The Dashboard's pages for everyone: the app launcher and "My account".
#![allow(clippy::unwrap_used)]

mod support;

use stackspin_domain::{AppName, Role};
use support::*;

#[tokio::test]
async fn the_launcher_shows_only_apps_the_person_may_use_with_admin_badges() {
    let p = start(fast_options()).await;
    let user = p.user("ada@example.org", false).await;
    p.app(AppSpec {
        name: "wiki",
        ..Default::default()
    })
    .await;
    p.app(AppSpec {
        name: "chat",
        redirect_uri: "https://chat.example.org/cb",
        ..Default::default()
    })
    .await;
    p.app(AppSpec {
        name: "payroll",
        redirect_uri: "https://pay.example.org/cb",
        ..Default::default()
    })
    .await;
    p.store
        .set_role(&user.email, &AppName::parse("chat").unwrap(), Role::Admin)
        .await
        .unwrap();
    p.store
        .set_role(&user.email, &AppName::parse("payroll").unwrap(), Role::None)
        .await
        .unwrap();
    let b = browser();
    assert!(!is_signed_in(&p, &b).await, "the Dashboard needs a login");
    sign_in(&p, &b, "ada@example.org", PASSWORD).await;
    let html = b
        .get(p.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // No icon registered: each tile shows the name's initial instead.
    assert!(
        html.contains(">C</span> CHAT <span class=\"badge\""),
        "{html}"
    );
    assert!(html.contains(">W</span> WIKI </h2>"), "{html}");
    assert!(
        !html.contains("PAYROLL"),
        "no tile for an app without access"
    );
    assert!(
        html.contains("href=\"https://app.example.org/\""),
        "Launch opens the app: {html}"
    );
    assert_eq!(html.matches("class=\"badge\"").count(), 1);
}

async fn account_form(p: &Provider, b: &reqwest::Client) -> String {
    b.get(p.url("/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_ends_other_sessions() {
    let p = start(fast_options()).await;
    p.user("ada@example.org", false).await;
    let rx = logout_receiver(200).await;
    let c = p
        .app(AppSpec {
            backchannel: Some(&rx.uri),
            ..Default::default()
        })
        .await;
    let other = browser();
    sign_in(&p, &other, "ada@example.org", PASSWORD).await;
    let pk = pkce();
    let code = get_code(&p, &other, &c, &pk).await;
    exchange(&p, &c, &code, &pk.verifier).await;

    let b = browser();
    sign_in(&p, &b, "ada@example.org", PASSWORD).await;
    let page = account_form(&p, &b).await;
    assert_eq!(
        page.matches("<tr>").count(),
        3,
        "header plus two sessions: {page}"
    );
    let csrf = hidden_value(&page, "csrf");
    let post = |current: &str, new: &str, confirm: &str| {
        b.post(p.url("/account/password"))
            .form(&[
                ("current", current),
                ("password", new),
                ("confirm", confirm),
                ("csrf", csrf.as_str()),
            ])
            .send()
    };
    let resp = post(
        "wrong current pw",
        "a new long password",
        "a new long password",
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 422);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("current password is not right")
    );
    let resp = post(PASSWORD, "a new long password", "different one here")
        .await
        .unwrap();
    assert!(resp.text().await.unwrap().contains("not the same"));
    let resp = post(PASSWORD, "a new long password", "a new long password")
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("Your password is changed")
    );
    // This session goes on; the other one ended, in the app too.
    assert!(is_signed_in(&p, &b).await);
    assert!(!is_signed_in(&p, &other).await);
    rx.wait_for(1).await;
    assert_eq!(
        sign_in(&p, &browser(), "ada@example.org", "a new long password")
            .await
            .status(),
        303
    );
}

#[tokio::test]
async fn sessions_can_be_ended_one_by_one_others_or_everywhere() {
    let p = start(fast_options()).await;
    p.user("ada@example.org", false).await;
    let (b1, b2, b3) = (browser(), browser(), browser());
    for b in [&b1, &b2, &b3] {
        sign_in(&p, b, "ada@example.org", PASSWORD).await;
    }
    let page = account_form(&p, &b1).await;
    let csrf = hidden_value(&page, "csrf");
    // A session id that is not one's own is refused.
    let resp = b1
        .post(p.url("/account/sessions"))
        .form(&[("target", "not-a-sid"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = b1
        .post(p.url("/account/sessions"))
        .form(&[("target", "others"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&resp), "/account");
    assert!(is_signed_in(&p, &b1).await);
    assert!(!is_signed_in(&p, &b2).await && !is_signed_in(&p, &b3).await);
    let resp = b1
        .post(p.url("/account/sessions"))
        .form(&[("target", "all"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert!(resp.text().await.unwrap().contains("You are logged out"));
    assert!(!is_signed_in(&p, &b1).await);
    // Without the CSRF token nothing happens.
    sign_in(&p, &b2, "ada@example.org", PASSWORD).await;
    let resp = b3
        .post(p.url("/account/sessions"))
        .form(&[("target", "all")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
}
