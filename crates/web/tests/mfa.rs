//! Two-step verification: enrolment, login with TOTP and recovery codes, replay protection,
//! and the policy that makes it compulsory.
#![allow(clippy::unwrap_used)]

mod support;

use stackspin_identity::totp;
use support::*;

/// Enrols the signed-in browser's account and returns (secret, recovery codes, accepted step).
async fn enrol(p: &Provider, b: &reqwest::Client) -> (String, Vec<String>, i64) {
    let page = b
        .get(p.url("/account/mfa"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let secret = hidden_value(&page, "secret");
    let step = chrono::Utc::now().timestamp() / totp::STEP_SECONDS;
    let code = totp::code_at(&totp::base32_decode(&secret).unwrap(), step);
    let resp = b
        .post(p.url("/account/mfa/enrol"))
        .form(&[
            ("secret", secret.as_str()),
            ("code", code.as_str()),
            ("return_to", "/"),
            ("csrf", &hidden_value(&page, "csrf")),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    let codes: Vec<String> = html
        .split("<li><code>")
        .skip(1)
        .map(|s| s.split('<').next().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10, "{html}");
    (secret, codes, step)
}

/// Password step, then the code step; returns the final response.
async fn login_with_code(p: &Provider, b: &reqwest::Client, code: &str) -> reqwest::Response {
    let resp = sign_in(p, b, "ada@example.org", PASSWORD).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), "/login/mfa");
    let page = b
        .get(p.url("/login/mfa"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    b.post(p.url("/login/mfa"))
        .form(&[("code", code), ("csrf", &hidden_value(&page, "csrf"))])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn totp_login_with_replay_protection_and_recovery_codes() {
    let p = start(fast_options()).await;
    p.user("ada@example.org", false).await;
    let c = p.app(AppSpec::default()).await;
    let b = browser();
    sign_in(&p, &b, "ada@example.org", PASSWORD).await;
    let (secret, codes, step) = enrol(&p, &b).await;
    let key = totp::base32_decode(&secret).unwrap();

    // The password alone no longer opens a session.
    let b2 = browser();
    let resp = sign_in(&p, &b2, "ada@example.org", PASSWORD).await;
    assert_eq!(location(&resp), "/login/mfa");
    assert!(
        !is_signed_in(&p, &b2).await,
        "no session before the second factor"
    );

    // The code accepted at enrolment cannot be used again (RFC 6238 §5.2).
    let resp = login_with_code(&p, &browser(), &totp::code_at(&key, step)).await;
    assert_eq!(resp.status(), 401);
    let resp = login_with_code(&p, &browser(), "000000").await;
    assert_eq!(resp.status(), 401);

    // The next step's code works once (one step of clock drift is allowed).
    let b3 = browser();
    let next = totp::code_at(&key, step + 1);
    let resp = login_with_code(&p, &b3, &next).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(login_with_code(&p, &browser(), &next).await.status(), 401);

    // The ID token says how the person signed in.
    let pk = pkce();
    let code = get_code(&p, &b3, &c, &pk).await;
    let (_, t) = exchange(&p, &c, &code, &pk.verifier).await;
    let id = verify_jwt(&p, t["id_token"].as_str().unwrap()).await;
    assert_eq!(id.claims["amr"], serde_json::json!(["pwd", "otp", "mfa"]));

    // A recovery code works once, with or without its dashes.
    let rc = codes[0].clone();
    assert_eq!(
        login_with_code(&p, &browser(), &rc.to_lowercase())
            .await
            .status(),
        303
    );
    assert_eq!(
        login_with_code(&p, &browser(), &rc.replace('-', ""))
            .await
            .status(),
        401
    );

    let kinds: Vec<String> = p
        .store
        .audit_events(&stackspin_storage::AuditFilter {
            kind: Some("mfa.".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(
        kinds.contains(&"mfa.enrolled".into())
            && kinds.contains(&"mfa.failure".into())
            && kinds.contains(&"mfa.success".into()),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn required_mfa_sends_people_to_enrol_before_any_app_gets_a_code() {
    let p = start(fast_options()).await;
    p.user("ada@example.org", false).await;
    let c = p.app(AppSpec::default()).await;
    let b = browser();
    sign_in(&p, &b, "ada@example.org", PASSWORD).await;
    p.store
        .set_setting(stackspin_web::MFA_SETTING, "everyone")
        .await
        .unwrap();

    // An existing password-only session does not satisfy the policy.
    let resp = b
        .get(authorize_url(&p, &c, &pkce(), &[("prompt", "none")]))
        .send()
        .await
        .unwrap();
    assert_eq!(query_of(&location(&resp))["error"], "interaction_required");
    let resp = b
        .get(authorize_url(&p, &c, &pkce(), &[]))
        .send()
        .await
        .unwrap();
    let loc = location(&resp);
    assert!(
        loc.starts_with("/account/mfa?return_to=%2Fauthorize"),
        "{loc}"
    );

    // A fresh password login goes to enrolment too.
    let resp = sign_in(&p, &browser(), "ada@example.org", PASSWORD).await;
    assert!(location(&resp).starts_with("/account/mfa"));

    enrol(&p, &b).await;
    let pk = pkce();
    let code = get_code(&p, &b, &c, &pk).await;
    let (status, _) = exchange(&p, &c, &code, &pk.verifier).await;
    assert_eq!(status, 200);

    // While required, it cannot be turned off.
    let page = b
        .get(p.url("/account/mfa"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("Turn off"));

    // Only admins: a regular user is no longer asked.
    p.store
        .set_setting(stackspin_web::MFA_SETTING, "admins")
        .await
        .unwrap();
    p.user("bob@example.org", false).await;
    let resp = sign_in(&p, &browser(), "bob@example.org", PASSWORD).await;
    assert_eq!(location(&resp), "/");
}

#[tokio::test]
async fn turning_mfa_off_needs_a_current_code() {
    let p = start(fast_options()).await;
    p.user("ada@example.org", false).await;
    let b = browser();
    sign_in(&p, &b, "ada@example.org", PASSWORD).await;
    let (_, codes, _) = enrol(&p, &b).await;
    let page = b
        .get(p.url("/account/mfa"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("10 unused recovery codes"), "{page}");
    let csrf = hidden_value(&page, "csrf");
    let resp = b
        .post(p.url("/account/mfa/remove"))
        .form(&[("code", "123456"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("That code is not valid")
    );
    let resp = b
        .post(p.url("/account/mfa/remove"))
        .form(&[("code", codes[1].as_str()), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&resp), "/account/mfa");
    assert_eq!(
        sign_in(&p, &browser(), "ada@example.org", PASSWORD)
            .await
            .status(),
        303
    );
    let resp = sign_in(&p, &browser(), "ada@example.org", PASSWORD).await;
    assert_eq!(location(&resp), "/", "no second step any more");
}
