//! Password recovery and invitations, with mail through a real SMTP server (aiosmtpd).
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use stackspin_domain::{
    Email, NewUser, UserName,
    secret::{hash_secret, random_token},
};
use stackspin_storage::{LinkPurpose, NewLink, OutgoingMail};
use stackspin_web::ProviderOptions;
use support::*;

fn options() -> ProviderOptions {
    ProviderOptions {
        mail_poll_interval: Duration::from_millis(100),
        mail_retry_base: Duration::from_millis(200),
        ..fast_options()
    }
}

async fn request_reset(p: &Provider, b: &reqwest::Client, email: &str) -> String {
    let page = b
        .get(p.url("/recover"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let resp = b
        .post(p.url("/recover"))
        .form(&[("email", email), ("csrf", &hidden_value(&page, "csrf"))])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

async fn set_password(
    p: &Provider,
    b: &reqwest::Client,
    link: &str,
    pw: &str,
    confirm: &str,
) -> reqwest::Response {
    let path = link.strip_prefix(&p.base).unwrap();
    let page = b.get(p.url(path)).send().await.unwrap();
    assert_eq!(page.status(), 200, "{link}");
    let page = page.text().await.unwrap();
    b.post(p.url("/reset"))
        .form(&[
            ("token", hidden_value(&page, "token").as_str()),
            ("password", pw),
            ("confirm", confirm),
            ("csrf", &hidden_value(&page, "csrf")),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgot_password_sends_a_single_use_link_and_ends_sessions() {
    let smtp = SmtpServer::start().await;
    let p = start_with(smtp.settings(), options()).await;
    p.user("ada@example.org", false).await;
    let rx = logout_receiver(200).await;
    let c = p
        .app(AppSpec {
            backchannel: Some(&rx.uri),
            ..Default::default()
        })
        .await;
    // Ada is signed in to an app somewhere.
    let elsewhere = browser();
    sign_in(&p, &elsewhere, "ada@example.org", PASSWORD).await;
    let pk = pkce();
    let code = get_code(&p, &elsewhere, &c, &pk).await;
    let (_, tokens) = exchange(&p, &c, &code, &pk.verifier).await;

    let b = browser();
    let known = request_reset(&p, &b, "ada@example.org").await;
    let unknown = request_reset(&p, &b, "nobody@example.org").await;
    assert_eq!(
        known.replace("ada@example.org", "X").split("csrf").next(),
        unknown
            .replace("nobody@example.org", "X")
            .split("csrf")
            .next(),
        "the answer does not reveal whether the account exists"
    );
    let mail = smtp.wait_for("ada@example.org").await;
    assert!(
        mail.contains("Subject: Reset your Stackspin password"),
        "{mail}"
    );
    let link = link_in(&mail);
    assert!(
        link.starts_with(&format!("{}/reset?token=", p.base)),
        "{link}"
    );

    let resp = set_password(
        &p,
        &b,
        &link,
        "a brand new password",
        "does not match at all",
    )
    .await;
    assert_eq!(resp.status(), 422);
    assert!(resp.text().await.unwrap().contains("not the same"));
    let resp = set_password(&p, &b, &link, "short", "short").await;
    assert!(resp.text().await.unwrap().contains("at least 12"));
    let resp = set_password(
        &p,
        &b,
        &link,
        "a brand new password",
        "a brand new password",
    )
    .await;
    assert!(resp.text().await.unwrap().contains("Your password is set"));

    // Single use.
    let again = b
        .get(p.url(link.strip_prefix(&p.base).unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 400);
    // Every session ended: the other browser is signed out, the app told and its tokens dead.
    assert!(!is_signed_in(&p, &elsewhere).await);
    rx.wait_for(1).await;
    assert_eq!(
        userinfo_status(&p, tokens["access_token"].as_str().unwrap()).await,
        401
    );
    assert_eq!(
        sign_in(&p, &browser(), "ada@example.org", PASSWORD)
            .await
            .status(),
        401
    );
    assert_eq!(
        sign_in(&p, &browser(), "ada@example.org", "a brand new password")
            .await
            .status(),
        303
    );

    // No mail for an address without an account.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        smtp.messages()
            .iter()
            .all(|m| !m.contains("nobody@example.org"))
    );
    let kinds: Vec<String> = p
        .store
        .audit_events(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(
        kinds.contains(&"recovery.requested".to_owned())
            && kinds.contains(&"recovery.completed".to_owned()),
        "{kinds:?}"
    );
}

async fn invite(p: &Provider, email: &str, lifetime: chrono::Duration) {
    let token = random_token(32);
    let link = format!("{}/reset?token={token}", p.base);
    let (subject, body) = stackspin_domain::mail::invitation(None, "Grace", &link, 7);
    p.store
        .invite_user(
            &NewUser {
                email: Email::parse(email).unwrap(),
                name: UserName::parse("Grace").unwrap(),
                password_hash: None,
                is_admin: false,
            },
            &[],
            &NewLink {
                token_hash: hash_secret(&token),
                purpose: LinkPurpose::Invite,
                expires_at: chrono::Utc::now() + lifetime,
            },
            &OutgoingMail {
                to: email.into(),
                subject,
                body,
            },
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invited_users_choose_their_password_through_the_emailed_link() {
    let smtp = SmtpServer::start().await;
    let p = start_with(smtp.settings(), options()).await;
    invite(&p, "grace@example.org", chrono::Duration::days(7)).await;
    // Before accepting, the account cannot log in.
    assert_eq!(
        sign_in(&p, &browser(), "grace@example.org", PASSWORD)
            .await
            .status(),
        401
    );
    let mail = smtp.wait_for("grace@example.org").await;
    assert!(
        mail.contains("Subject: You are invited to Stackspin"),
        "{mail}"
    );
    let b = browser();
    let link = link_in(&mail);
    let page = b
        .get(p.url(link.strip_prefix(&p.base).unwrap()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Welcome to Stackspin"));
    let resp = set_password(&p, &b, &link, PASSWORD, PASSWORD).await;
    assert!(resp.text().await.unwrap().contains("Your password is set"));
    assert_eq!(
        sign_in(&p, &b, "grace@example.org", PASSWORD)
            .await
            .status(),
        303
    );
    let events = p.store.audit_events(&Default::default()).await.unwrap();
    assert!(events.iter().any(|e| e.kind == "invitation.accepted"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_waits_for_a_mail_server_that_is_down() {
    let mut smtp = SmtpServer::planned();
    let p = start_with(smtp.settings(), options()).await;
    invite(&p, "late@example.org", chrono::Duration::days(7)).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(p.store.pending_mail().await.unwrap(), 1, "queued, not lost");
    smtp.run().await;
    let mail = smtp.wait_for("late@example.org").await;
    assert!(mail.contains("/reset?token="));
    for _ in 0..50 {
        if p.store.pending_mail().await.unwrap() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("mail still pending after delivery");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_links_do_not_work() {
    let smtp = SmtpServer::start().await;
    let p = start_with(smtp.settings(), options()).await;
    invite(&p, "slow@example.org", chrono::Duration::milliseconds(500)).await;
    let mail = smtp.wait_for("slow@example.org").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let resp = browser()
        .get(p.url(link_in(&mail).strip_prefix(&p.base).unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("does not work any more")
    );
}
