//! Protocol tests of the OpenID Connect provider: one test per rule, the refusals included.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use serde_json::Value;
use stackspin_domain::{AppName, Role, SigningAlg};
use stackspin_web::ProviderOptions;
use support::*;

#[tokio::test]
async fn discovery_names_the_exact_issuer_and_publishes_both_key_types() {
    let p = start(fast_options()).await;
    let meta: Value = reqwest::get(p.url("/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], p.base.as_str());
    assert_eq!(meta["authorization_endpoint"], p.url("/authorize"));
    assert_eq!(
        meta["response_types_supported"],
        serde_json::json!(["code"])
    );
    assert_eq!(
        meta["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(meta["backchannel_logout_supported"], true);
    assert_eq!(meta["authorization_response_iss_parameter_supported"], true);
    let jwks: Value = reqwest::get(meta["jwks_uri"].as_str().unwrap())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let algs: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["alg"].as_str().unwrap())
        .collect();
    assert!(
        algs.contains(&"RS256") && algs.contains(&"ES256"),
        "{algs:?}"
    );
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k.get("d").is_none()),
        "private parts leaked"
    );
}

#[tokio::test]
async fn code_flow_with_pkce_nonce_userinfo_refresh_introspection_and_revocation() {
    let p = start(fast_options()).await;
    let user = p.user("ada@example.org", false).await;
    let c = p.app(AppSpec::default()).await;
    p.store
        .set_role(&user.email, &AppName::parse("wiki").unwrap(), Role::Admin)
        .await
        .unwrap();
    let b = browser();
    let pk = pkce();

    // Not signed in: the provider sends the person to its login page and back.
    let resp = b.get(authorize_url(&p, &c, &pk, &[])).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    let login = location(&resp);
    assert!(login.starts_with("/login?"), "{login}");
    let page = b
        .get(p.url(&login))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let resp = b
        .post(p.url("/login"))
        .form(&[
            ("email", "ada@example.org"),
            ("password", PASSWORD),
            ("csrf", &hidden_value(&page, "csrf")),
            ("return_to", &hidden_value(&page, "return_to")),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let back = location(&resp);
    assert!(back.starts_with("/authorize?"), "{back}");
    let resp = b.get(p.url(&back)).send().await.unwrap();
    let q = query_of(&location(&resp));
    assert_eq!(
        (q["state"].as_str(), q["iss"].as_str()),
        ("st4te", p.base.as_str())
    );

    let (status, tokens) = exchange(&p, &c, &q["code"], &pk.verifier).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    let id = verify_jwt(&p, tokens["id_token"].as_str().unwrap()).await;
    assert_eq!(id.header["alg"], "RS256");
    let claims = &id.claims;
    assert_eq!(claims["iss"], p.base.as_str());
    assert_eq!(claims["aud"], c.client_id.as_str());
    assert_eq!(claims["nonce"], "n0nce");
    assert_eq!(claims["sub"], user.id.to_string());
    assert_eq!(claims["email"], "ada@example.org");
    assert_eq!(claims["groups"], serde_json::json!(["admin"]));
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
    assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());
    assert_eq!(
        claims["at_hash"],
        stackspin_identity::claims::at_hash(tokens["access_token"].as_str().unwrap())
    );

    let access = tokens["access_token"].as_str().unwrap();
    let info: Value = reqwest::Client::new()
        .get(p.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["sub"], user.id.to_string());
    assert_eq!(info["name"], "Test Person");
    assert_eq!(info["groups"], serde_json::json!(["admin"]));
    // UserInfo by POST with the token in the body.
    let info: Value = reqwest::Client::new()
        .post(p.url("/userinfo"))
        .form(&[("access_token", access)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["email"], "ada@example.org");

    let intro: Value = reqwest::Client::new()
        .post(p.url("/introspect"))
        .form(&[
            ("token", access),
            ("client_id", &c.client_id),
            ("client_secret", c.secret.as_deref().unwrap()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(intro["active"], true);
    assert_eq!(intro["sub"], user.id.to_string());

    let (status, renewed) = refresh(&p, &c, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{renewed}");
    assert_ne!(
        renewed["refresh_token"], tokens["refresh_token"],
        "refresh tokens rotate"
    );
    let new_access = renewed["access_token"].as_str().unwrap();
    assert_eq!(userinfo_status(&p, new_access).await, 200);

    let resp = reqwest::Client::new()
        .post(p.url("/revoke"))
        .basic_auth(&c.client_id, c.secret.as_deref())
        .form(&[("token", new_access)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(userinfo_status(&p, new_access).await, 401);
}

#[tokio::test]
async fn unknown_client_and_unregistered_redirect_uri_get_a_page_not_a_redirect() {
    let p = start(fast_options()).await;
    let c = p.app(AppSpec::default()).await;
    let b = browser();
    let pk = pkce();
    for extra in [
        [("redirect_uri", "https://evil.example.org/cb")],
        [("redirect_uri", "https://wiki.example.org/cb/extra")],
        [("client_id", "no-such-client")],
        [("redirect_uri", "")],
    ] {
        let resp = b
            .get(authorize_url(&p, &c, &pk, &extra))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{extra:?}");
        assert!(resp.headers().get("location").is_none(), "{extra:?}");
        assert!(resp.text().await.unwrap().contains("<h1>"));
    }
}

#[tokio::test]
async fn request_errors_go_back_to_the_app_with_state_and_iss() {
    let p = start(fast_options()).await;
    let c = p.app(AppSpec::default()).await;
    let pub_c = p
        .app(AppSpec {
            name: "spa",
            redirect_uri: "http://127.0.0.1/spa",
            public: true,
            ..Default::default()
        })
        .await;
    let b = browser();
    let pk = pkce();
    // (client, parameters to change, the error the app must receive)
    type Case<'a> = (&'a support::Client, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            &c,
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (
            &c,
            vec![("response_type", "code id_token")],
            "unsupported_response_type",
        ),
        (
            &c,
            vec![("code_challenge_method", "plain")],
            "invalid_request",
        ),
        (&c, vec![("scope", "email")], "invalid_scope"),
        (&c, vec![("prompt", "none")], "login_required"),
        (&c, vec![("prompt", "none login")], "invalid_request"),
        (&c, vec![("request", "eyJ.x.y")], "request_not_supported"),
        (&c, vec![("max_age", "-1")], "invalid_request"),
        (
            &pub_c,
            vec![("code_challenge", ""), ("code_challenge_method", "")],
            "invalid_request",
        ),
    ];
    for (client, extra, expected) in cases {
        let resp = b
            .get(authorize_url(&p, client, &pk, &extra))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303, "{extra:?}");
        let loc = location(&resp);
        assert!(loc.starts_with(&client.redirect_uri), "{loc}");
        let q = query_of(&loc);
        assert_eq!(q["error"], expected, "{extra:?}");
        assert_eq!(q["state"], "st4te");
        assert_eq!(q["iss"], p.base);
    }
    // Repeated parameters are refused (RFC 6749 §3.1).
    let url = format!("{}&state=again", authorize_url(&p, &c, &pk, &[]));
    assert_eq!(b.get(url).send().await.unwrap().status(), 400);
}

#[tokio::test]
async fn codes_are_single_use_and_a_reused_code_revokes_its_tokens() {
    let p = start(fast_options()).await;
    p.user("ada@example.org", false).await;
    let c = p.app(AppSpec::default()).await;
    let b = browser();
    sign_in(&p, &b, "ada@example.org", PASSWORD).await;
    let pk = pkce();
    let code = get_code(&p, &b, &c, &pk).await;
    let (status, tokens) = exchange(&p, &c, &code, &pk.verifier).await;
    assert_eq!(status, 200);
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(userinfo_status(&p, access).await, 200);
    let (status, err) = exchange(&p, &c, &code, &pk.verifier).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(
        userinfo_status(&p, access).await,
        401,
        "tokens from a replayed code are revoked"
    );
    let (status, _) = refresh(&p, &c, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn code_is_bound_to_pkce_redirect_uri_and_client() {
    let p = start(fast_options()).await;
    p.user("ada@example.org", false).await;
    let c = p.app(AppSpec::default()).await;
    let other = p
        .app(AppSpec {
            name: "other",
            redirect_uri: "https://wiki.example.org/cb",
            ..Default::default()
        })
        .await;
    let b = browser();
    sign_in(&p, &b, "ada@example.org", PASSWORD).await;

    let pk = pkce();
    let code = get_code(&p, &b, &c, &pk).await;
    let (status, err) = exchange(&p, &c, &code, &pkce().verifier).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_grant")),
        "wrong verifier"
    );

    let pk = pkce();
    let code = get_code(&p, &b, &c, &pk).await;
    let (status, _) = exchange(&p, &other, &code, &pk.verifier).await;
    assert_eq!(status, 400, "another client cannot redeem the code");

    let pk = pkce();
    let code = get_code(&p, &b, &c, &pk).await;
    let resp = reqwest::Client::new()
        .post(p.url("/token"))
        .basic_auth(&c.client_id, c.secret.as_deref())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "https://wiki.example.org/other"),
            ("code_verifier", pk.verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "wrong redirect_uri");

    let pk = pkce();
    let code = get_code(&p, &b, &c, &pk).await;
    let resp = reqwest::Client::new()
        .post(p.url("/token"))
        .basic_auth(&c.client_id, c.secret.as_deref())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", c.redirect_uri.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "missing verifier");
}

#[tokio::test]
async fn expired_codes_are_refused() {
    let p = start(ProviderOptions {
        code_lifetime: chrono::Duration::seconds(1),
        ..fast_options()
    })
    .await;
    p.user("ada@example.org", false).await;
    let c = p.app(AppSpec::default()).await;
    let b = browser();
    sign_in(&p, &b, "ada@example.org", PASSWORD).await;
    let pk = pkce();
    let code = get_code(&p, &b, &c, &pk).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, err) = exchange(&p, &c, &code, &pk.verifier).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn client_authentication_basic_post_and_failures() {
    let p = start(fast_options()).await;
    p.user("ada@example.org", false).await;
    let c = p.app(AppSpec::default()).await;
    let b = browser();
    sign_in(&p, &b, "ada@example.org", PASSWORD).await;

    let pk = pkce();
    let code = get_code(&p, &b, &c, &pk).await;
    let resp = reqwest::Client::new()
        .post(p.url("/token"))
        .basic_auth(&c.client_id, Some("wrong secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", c.redirect_uri.as_str()),
            ("code_verifier", pk.verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().get("www-authenticate").is_some());
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );

    // client_secret_post works (and the code was not consumed by the failed attempt).
    let resp = reqwest::Client::new()
        .post(p.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", c.redirect_uri.as_str()),
            ("code_verifier", pk.verifier.as_str()),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.secret.as_deref().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");

    let resp = reqwest::Client::new()
        .post(p.url("/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.secret.as_deref().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_the_whole_family() {
    let p = start(fast_options()).await;
    p.user("ada@example.org", false).await;
    let c = p.app(AppSpec::default()).await;
    let b = browser();
    sign_in(&p, &b, "ada@example.org", PASSWORD).await;
    let pk = pkce();
    let code = get_code(&p, &b, &c, &pk).await;
    let (_, t1) = exchange(&p, &c, &code, &pk.verifier).await;
    let r1 = t1["refresh_token"].as_str().unwrap();
    let (status, t2) = refresh(&p, &c, r1).await;
    assert_eq!(status, 200);
    let (status, err) = refresh(&p, &c, r1).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, _) = refresh(&p, &c, t2["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 400, "the rotated token died with its family");
    assert_eq!(
        userinfo_status(&p, t2["access_token"].as_str().unwrap()).await,
        401
    );
}

#[tokio::test]
async fn role_none_is_refused_with_a_page_and_access_denied() {
    let p = start(fast_options()).await;
    let user = p.user("ada@example.org", false).await;
    let c = p.app(AppSpec::default()).await;
    let b = browser();
    sign_in(&p, &b, "ada@example.org", PASSWORD).await;

    let pk = pkce();
    let code = get_code(&p, &b, &c, &pk).await;
    let (_, tokens) = exchange(&p, &c, &code, &pk.verifier).await;

    p.store
        .set_role(&user.email, &AppName::parse("wiki").unwrap(), Role::None)
        .await
        .unwrap();
    // At once: the app's tokens stop working and no new ones are issued.
    assert_eq!(
        userinfo_status(&p, tokens["access_token"].as_str().unwrap()).await,
        401
    );
    let (status, _) = refresh(&p, &c, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 400);

    let resp = b
        .get(authorize_url(&p, &c, &pkce(), &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let html = resp.text().await.unwrap();
    assert!(html.contains("No access to this app"), "{html}");
    assert!(html.contains("error=access_denied"), "{html}");
    assert!(!html.contains("code="), "no code for an app without access");

    let resp = b
        .get(authorize_url(&p, &c, &pkce(), &[("prompt", "none")]))
        .send()
        .await
        .unwrap();
    assert_eq!(query_of(&location(&resp))["error"], "access_denied");
}

#[tokio::test]
async fn groups_claim_follows_the_role_and_default_role() {
    let p = start(fast_options()).await;
    let user = p.user("ada@example.org", false).await;
    let c = p.app(AppSpec::default()).await;
    let locked = p
        .app(AppSpec {
            name: "payroll",
            redirect_uri: "https://payroll.example.org/cb",
            default_role: Role::None,
            ..Default::default()
        })
        .await;
    let b = browser();
    sign_in(&p, &b, "ada@example.org", PASSWORD).await;
    let pk = pkce();
    let code = get_code(&p, &b, &c, &pk).await;
    let (_, t) = exchange(&p, &c, &code, &pk.verifier).await;
    let id = verify_jwt(&p, t["id_token"].as_str().unwrap()).await;
    assert_eq!(id.claims["groups"], serde_json::json!(["user"]));

    let resp = b
        .get(authorize_url(&p, &locked, &pkce(), &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "default role none means no access");
    p.store
        .set_role(&user.email, &AppName::parse("payroll").unwrap(), Role::User)
        .await
        .unwrap();
    let pk = pkce();
    get_code(&p, &b, &locked, &pk).await;
}

#[tokio::test]
async fn prompt_login_and_max_age_force_a_fresh_login() {
    let p = start(fast_options()).await;
    p.user("ada@example.org", false).await;
    let c = p.app(AppSpec::default()).await;
    let b = browser();
    sign_in(&p, &b, "ada@example.org", PASSWORD).await;
    for extra in [("prompt", "login"), ("max_age", "0")] {
        if extra.0 == "max_age" {
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
        let resp = b
            .get(authorize_url(&p, &c, &pkce(), &[extra]))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303);
        let loc = location(&resp);
        assert!(loc.starts_with("/login?"), "{extra:?}: {loc}");
        // After signing in, the request continues without asking again.
        assert!(!loc.contains("prompt%3Dlogin"), "{loc}");
    }
    let resp = b
        .get(authorize_url(&p, &c, &pkce(), &[("max_age", "3600")]))
        .send()
        .await
        .unwrap();
    assert!(location(&resp).starts_with(&c.redirect_uri));
}

#[tokio::test]
async fn loopback_redirects_may_use_any_port() {
    let p = start(fast_options()).await;
    p.user("ada@example.org", false).await;
    let mut c = p
        .app(AppSpec {
            name: "cli",
            redirect_uri: "http://127.0.0.1/callback",
            public: true,
            ..Default::default()
        })
        .await;
    let b = browser();
    sign_in(&p, &b, "ada@example.org", PASSWORD).await;
    c.redirect_uri = "http://127.0.0.1:49152/callback".into();
    let pk = pkce();
    let code = get_code(&p, &b, &c, &pk).await;
    // A public client: no secret, PKCE proves possession.
    let (status, t) = exchange(&p, &c, &code, &pk.verifier).await;
    assert_eq!(status, 200, "{t}");
}

#[tokio::test]
async fn es256_clients_get_es256_id_tokens() {
    let p = start(fast_options()).await;
    p.user("ada@example.org", false).await;
    let c = p
        .app(AppSpec {
            alg: SigningAlg::Es256,
            ..Default::default()
        })
        .await;
    let b = browser();
    sign_in(&p, &b, "ada@example.org", PASSWORD).await;
    let pk = pkce();
    let code = get_code(&p, &b, &c, &pk).await;
    let (_, t) = exchange(&p, &c, &code, &pk.verifier).await;
    let id = verify_jwt(&p, t["id_token"].as_str().unwrap()).await;
    assert_eq!(id.header["alg"], "ES256");
}

#[tokio::test]
async fn key_rotation_is_seen_by_a_caching_client() {
    let p = start(fast_options()).await;
    p.user("ada@example.org", false).await;
    let c = p.app(AppSpec::default()).await;
    let b = browser();
    sign_in(&p, &b, "ada@example.org", PASSWORD).await;

    // The client caches the key set once, like apps do.
    let cached: Value = reqwest::get(p.url("/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cached_kids: Vec<String> = cached["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    let pk = pkce();
    let code = get_code(&p, &b, &c, &pk).await;
    let (_, before) = exchange(&p, &c, &code, &pk.verifier).await;
    let old = before["id_token"].as_str().unwrap().to_owned();

    stackspin_web::oidc::keys::rotate(&p.store, chrono::Duration::hours(1))
        .await
        .unwrap();
    p.state.keys.reload(&p.store).await.unwrap();

    let pk = pkce();
    let code = get_code(&p, &b, &c, &pk).await;
    let (_, after) = exchange(&p, &c, &code, &pk.verifier).await;
    let new = after["id_token"].as_str().unwrap();
    let new_kid = verify_jwt(&p, new).await.header["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        !cached_kids.contains(&new_kid),
        "a rotated key has a new kid"
    );
    // The unknown kid makes the client refetch; both old and new verify against the new set.
    let old_kid = verify_jwt(&p, &old).await.header["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(cached_kids.contains(&old_kid));
    let jwks: Value = reqwest::get(p.url("/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(
        kids.contains(&new_kid.as_str()) && kids.contains(&old_kid.as_str()),
        "{kids:?}"
    );
}

#[tokio::test]
async fn rp_initiated_logout_with_hint_redirects_with_state_and_notifies_apps() {
    let p = start(fast_options()).await;
    let user = p.user("ada@example.org", false).await;
    let rx = logout_receiver(200).await;
    let c = p
        .app(AppSpec {
            backchannel: Some(&rx.uri),
            post_logout: Some("https://wiki.example.org/bye"),
            ..Default::default()
        })
        .await;
    let b = browser();
    sign_in(&p, &b, "ada@example.org", PASSWORD).await;
    let pk = pkce();
    let code = get_code(&p, &b, &c, &pk).await;
    let (_, t) = exchange(&p, &c, &code, &pk.verifier).await;
    let id_token = t["id_token"].as_str().unwrap();
    let sid = verify_jwt(&p, id_token).await.claims["sid"]
        .as_str()
        .unwrap()
        .to_owned();

    // An unregistered post-logout URI is refused with a page.
    let bad = b
        .get(p.url("/logout"))
        .query(&[
            ("id_token_hint", id_token),
            ("post_logout_redirect_uri", "https://evil.example.org/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    let resp = b
        .get(p.url("/logout"))
        .query(&[
            ("id_token_hint", id_token),
            ("post_logout_redirect_uri", "https://wiki.example.org/bye"),
            ("state", "bye-state"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(
        location(&resp),
        "https://wiki.example.org/bye?state=bye-state"
    );

    let tokens = rx.wait_for(1).await;
    let lt = verify_jwt(&p, &tokens[0]).await;
    assert_eq!(lt.header["typ"], "logout+jwt");
    assert_eq!(lt.claims["aud"], c.client_id.as_str());
    assert_eq!(lt.claims["sub"], user.id.to_string());
    assert_eq!(lt.claims["sid"], sid.as_str());
    assert!(lt.claims.get("nonce").is_none());
    assert!(lt.claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    // The session is over: the app's tokens are revoked and a new authorization needs a login.
    assert_eq!(
        userinfo_status(&p, t["access_token"].as_str().unwrap()).await,
        401
    );
    let resp = b
        .get(authorize_url(&p, &c, &pkce(), &[("prompt", "none")]))
        .send()
        .await
        .unwrap();
    assert_eq!(query_of(&location(&resp))["error"], "login_required");
}

#[tokio::test]
async fn logout_without_hint_asks_for_confirmation() {
    let p = start(fast_options()).await;
    p.user("ada@example.org", false).await;
    let b = browser();
    sign_in(&p, &b, "ada@example.org", PASSWORD).await;
    let resp = b.get(p.url("/logout")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    assert!(html.contains("Log out?"));
    // A forged POST without the CSRF token does not log out.
    let resp = b
        .post(p.url("/logout"))
        .form(&[("confirm", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("Log out?"));
    let csrf = hidden_value(&html, "csrf");
    let resp = b
        .post(p.url("/logout"))
        .form(&[("confirm", "yes"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert!(resp.text().await.unwrap().contains("You are logged out"));
    assert!(!is_signed_in(&p, &b).await);
}

#[tokio::test]
async fn role_change_and_deletion_end_app_sessions_through_back_channel() {
    let p = start(fast_options()).await;
    let user = p.user("ada@example.org", false).await;
    p.user("admin@example.org", true).await;
    let rx = logout_receiver(200).await;
    let c = p
        .app(AppSpec {
            backchannel: Some(&rx.uri),
            ..Default::default()
        })
        .await;
    let b = browser();
    sign_in(&p, &b, "ada@example.org", PASSWORD).await;
    let pk = pkce();
    let code = get_code(&p, &b, &c, &pk).await;
    exchange(&p, &c, &code, &pk.verifier).await;

    // Promotion: the app is told to end the session so the next login carries the new role.
    p.store
        .set_role(&user.email, &AppName::parse("wiki").unwrap(), Role::Admin)
        .await
        .unwrap();
    let got = rx.wait_for(1).await;
    assert_eq!(
        verify_jwt(&p, &got[0]).await.claims["sub"],
        user.id.to_string()
    );

    // The person's Stackspin session survives; the next authorization sees the new role.
    let pk = pkce();
    let code = get_code(&p, &b, &c, &pk).await;
    let (_, t) = exchange(&p, &c, &code, &pk.verifier).await;
    assert_eq!(
        verify_jwt(&p, t["id_token"].as_str().unwrap()).await.claims["groups"],
        serde_json::json!(["admin"])
    );

    p.store.delete_user(&user.email).await.unwrap();
    rx.wait_for(2).await;
    assert_eq!(
        userinfo_status(&p, t["access_token"].as_str().unwrap()).await,
        401
    );
}

#[tokio::test]
async fn failed_back_channel_deliveries_are_retried() {
    let p = start(fast_options()).await;
    p.user("ada@example.org", false).await;
    let rx = logout_receiver(500).await;
    let c = p
        .app(AppSpec {
            backchannel: Some(&rx.uri),
            ..Default::default()
        })
        .await;
    let b = browser();
    sign_in(&p, &b, "ada@example.org", PASSWORD).await;
    let pk = pkce();
    let code = get_code(&p, &b, &c, &pk).await;
    exchange(&p, &c, &code, &pk.verifier).await;
    let resp = b
        .get(p.url("/logout"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden_value(&resp, "csrf");
    b.post(p.url("/logout"))
        .form(&[("confirm", "yes"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    // First attempt at once, the retry after a one-second backoff.
    rx.wait_for(2).await;
    assert_eq!(
        p.store.pending_logouts().await.unwrap(),
        1,
        "still pending after failures"
    );
}

#[tokio::test]
async fn login_failures_look_the_same_and_are_throttled_and_audited() {
    let p = start(fast_options()).await;
    p.user("ada@example.org", false).await;
    let b = browser();
    let wrong = sign_in(&p, &b, "ada@example.org", "wrong password!!").await;
    let unknown = sign_in(&p, &b, "nobody@example.org", "wrong password!!").await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(unknown.status(), 401);
    let (w, u) = (wrong.text().await.unwrap(), unknown.text().await.unwrap());
    assert!(w.contains("Email or password is incorrect."));
    assert_eq!(
        w.replace("ada@example.org", "X")
            .split("name=\"csrf\"")
            .next()
            .map(str::len),
        u.replace("nobody@example.org", "X")
            .split("name=\"csrf\"")
            .next()
            .map(str::len),
        "the two failures render the same page"
    );
    for _ in 0..10 {
        sign_in(&p, &b, "target@example.org", "guess guess guess").await;
    }
    let blocked = sign_in(&p, &b, "target@example.org", "guess guess guess").await;
    assert_eq!(blocked.status(), 429);

    let events = p
        .store
        .audit_events(&stackspin_storage::AuditFilter {
            kind: Some("login.".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        events.iter().any(
            |e| e.kind == "login.failure" && e.user_email.as_deref() == Some("ada@example.org")
        )
    );
    let ok = sign_in(&p, &b, "ada@example.org", PASSWORD).await;
    assert_eq!(ok.status(), 303);
    let events = p.store.audit_events(&Default::default()).await.unwrap();
    assert_eq!(events[0].kind, "login.success");
}

#[tokio::test]
async fn login_form_needs_its_csrf_token_and_rejects_open_redirects() {
    let p = start(fast_options()).await;
    p.user("ada@example.org", false).await;
    let b = browser();
    let resp = b
        .post(p.url("/login"))
        .form(&[
            ("email", "ada@example.org"),
            ("password", PASSWORD),
            ("csrf", "forged"),
            ("return_to", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let page = b
        .get(p.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden_value(&page, "csrf");
    let resp = b
        .post(p.url("/login"))
        .header("origin", "https://evil.example.org")
        .form(&[
            ("email", "ada@example.org"),
            ("password", PASSWORD),
            ("csrf", csrf.as_str()),
            ("return_to", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "cross-site POST");
    let resp = b
        .post(p.url("/login"))
        .header("origin", "null")
        .header("sec-fetch-site", "cross-site")
        .form(&[
            ("email", "ada@example.org"),
            ("password", PASSWORD),
            ("csrf", csrf.as_str()),
            ("return_to", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "Origin null from another site");
    // Chromium sends `Origin: null` on same-origin form posts under some referrer policies;
    // Sec-Fetch-Site then vouches for the request (found by the browser test).
    let resp = b
        .post(p.url("/login"))
        .header("origin", "null")
        .header("sec-fetch-site", "same-origin")
        .form(&[
            ("email", "ada@example.org"),
            ("password", "wrong password here"),
            ("csrf", csrf.as_str()),
            ("return_to", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "reaches the password check");
    let resp = b
        .post(p.url("/login"))
        .form(&[
            ("email", "ada@example.org"),
            ("password", PASSWORD),
            ("csrf", csrf.as_str()),
            ("return_to", "//evil.example.org/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&resp), "/");
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
}

#[tokio::test]
async fn password_hashes_are_upgraded_on_login() {
    // The server uses stronger parameters than the ones the user's hash was made with.
    let p = start(ProviderOptions {
        hash_params: stackspin_domain::password::HashParams {
            memory_kib: 2048,
            iterations: 1,
            parallelism: 1,
        },
        ..fast_options()
    })
    .await;
    let user = p.user("ada@example.org", false).await;
    let b = browser();
    assert_eq!(
        sign_in(&p, &b, "ada@example.org", PASSWORD).await.status(),
        303
    );
    for _ in 0..50 {
        let now = p.store.user_by_id(user.id).await.unwrap().unwrap();
        if now
            .password_hash
            .as_ref()
            .unwrap()
            .as_phc()
            .contains("m=2048")
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("hash was not upgraded");
}

/// An app that checks one access value (HedgeDoc) gets `["admin", "user"]` for admins, in the
/// ID token and from UserInfo, so its admins are not locked out; others are unchanged.
#[tokio::test]
async fn an_app_that_checks_one_value_gets_admins_as_users_too() {
    let p = start(fast_options()).await;
    p.user("ada@example.org", true).await;
    p.user("bob@example.org", false).await;
    let c = p.app(AppSpec::default()).await;
    let name = AppName::parse(&c.name).unwrap();
    p.store
        .set_groups_claim(&name, stackspin_storage::GroupsClaim::RoleAndUser)
        .await
        .unwrap();
    let ada = stackspin_domain::Email::parse("ada@example.org").unwrap();
    p.store.set_role(&ada, &name, Role::Admin).await.unwrap();
    for (email, groups) in [
        ("ada@example.org", serde_json::json!(["admin", "user"])),
        ("bob@example.org", serde_json::json!(["user"])),
    ] {
        let b = browser();
        sign_in(&p, &b, email, PASSWORD).await;
        let pk = pkce();
        let code = get_code(&p, &b, &c, &pk).await;
        let (_, t) = exchange(&p, &c, &code, &pk.verifier).await;
        let id = verify_jwt(&p, t["id_token"].as_str().unwrap()).await;
        assert_eq!(id.claims["groups"], groups, "{email}");
        let info: Value = reqwest::Client::new()
            .get(p.url("/userinfo"))
            .bearer_auth(t["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(info["groups"], groups, "{email}");
    }
}
