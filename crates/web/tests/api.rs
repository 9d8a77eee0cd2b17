//! `/api/v1`: who may call what, and that an admin token can do what the admin pages do.
#![allow(clippy::unwrap_used)]

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use stackspin_domain::secret::hash_secret;
use support::*;

async fn admin_token(p: &Provider) -> String {
    let admin = p.user("root@example.org", true).await;
    let token = "ssp_test-token-0123456789abcdef".to_owned();
    p.store
        .create_api_token(admin.id, "tests", &hash_secret(&token))
        .await
        .unwrap();
    token
}

async fn call(
    p: &Provider,
    c: &reqwest::Client,
    token: Option<&str>,
    m: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = c.request(m, p.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn admin_endpoints(user_id: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (
            Method::POST,
            format!("/api/v1/users/{user_id}/link"),
            Some(json!({"mail": false})),
        ),
        (Method::GET, "/api/v1/users".into(), None),
        (
            Method::POST,
            "/api/v1/users".into(),
            Some(json!({"email": "x@example.org", "name": "X"})),
        ),
        (Method::GET, format!("/api/v1/users/{user_id}"), None),
        (
            Method::PATCH,
            format!("/api/v1/users/{user_id}"),
            Some(json!({"name": "Y", "version": "2026-01-01T00:00:00Z"})),
        ),
        (Method::DELETE, format!("/api/v1/users/{user_id}"), None),
        (
            Method::PUT,
            format!("/api/v1/users/{user_id}/roles/wiki"),
            Some(json!({"role": "admin"})),
        ),
        (Method::GET, "/api/v1/apps".into(), None),
        (
            Method::POST,
            "/api/v1/apps".into(),
            Some(
                json!({"name": "n", "url": "https://n.example.org", "redirect_uris": ["https://n.example.org/cb"]}),
            ),
        ),
        (Method::GET, "/api/v1/audit".into(), None),
        (
            Method::PATCH,
            "/api/v1/apps/wiki".into(),
            Some(
                json!({"url": "https://x.example.org", "redirect_uris": ["https://x.example.org/cb"]}),
            ),
        ),
        (Method::DELETE, "/api/v1/apps/wiki".into(), None),
        (Method::POST, "/api/v1/apps/wiki/secret".into(), None),
        (Method::GET, "/api/v1/settings".into(), None),
        (
            Method::PUT,
            "/api/v1/settings".into(),
            Some(json!({"mfa_required": "everyone"})),
        ),
        (
            Method::POST,
            "/api/v1/users/batch".into(),
            Some(json!({"action": "delete", "ids": [user_id]})),
        ),
        (Method::GET, "/api/v1/access".into(), None),
        (Method::GET, "/api/v1/apps/wiki".into(), None),
        (
            Method::PUT,
            "/api/v1/apps/wiki/default-role".into(),
            Some(json!({"role": "admin"})),
        ),
        (
            Method::POST,
            "/api/v1/settings/test-mail".into(),
            Some(json!({"to": "x@example.org"})),
        ),
        (Method::GET, "/api/v1/status".into(), None),
    ]
}

#[tokio::test]
async fn non_admins_get_403_and_strangers_401_on_every_admin_endpoint() {
    let p = start(fast_options()).await;
    let user = p.user("ada@example.org", false).await;
    p.app(AppSpec::default()).await;
    let b = browser();
    sign_in(&p, &b, "ada@example.org", PASSWORD).await;
    for (m, path, body) in admin_endpoints(&user.id.to_string()) {
        // Marked as our own page's request, so only the admin check can refuse it.
        let mut req = b
            .request(m.clone(), p.url(&path))
            .header("x-requested-with", "stackspin");
        if let Some(body) = &body {
            req = req.json(body);
        }
        let status = req.send().await.unwrap().status().as_u16();
        assert_eq!(status, 403, "{m} {path} as a non-admin");
        let (status, err) = call(
            &p,
            &reqwest::Client::new(),
            None,
            m.clone(),
            &path,
            body.clone(),
        )
        .await;
        assert_eq!(
            (status, err["error"].as_str()),
            (401, Some("unauthenticated")),
            "{m} {path} without credentials"
        );
        let (status, _) = call(
            &p,
            &reqwest::Client::new(),
            Some("ssp_not-a-token"),
            m.clone(),
            &path,
            body,
        )
        .await;
        assert_eq!(status, 401, "{m} {path} with a bad token");
    }
    // Nothing was changed by any of it.
    assert_eq!(p.store.count_users().await.unwrap(), 1);
}

#[tokio::test]
async fn session_writes_need_our_marker_header() {
    let p = start(fast_options()).await;
    p.user("root@example.org", true).await;
    let b = browser();
    sign_in(&p, &b, "root@example.org", PASSWORD).await;
    let body = json!({"email": "new@example.org", "name": "New"});
    let resp = b
        .post(p.url("/api/v1/users"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "a cross-site form could have sent this");
    let resp = b
        .post(p.url("/api/v1/users"))
        .header("x-requested-with", "stackspin")
        .header("origin", "https://evil.example.org")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "other origin");
    let resp = b
        .post(p.url("/api/v1/users"))
        .header("x-requested-with", "stackspin")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    // Reading needs no marker.
    assert_eq!(
        b.get(p.url("/api/v1/users")).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn an_admin_token_does_what_the_admin_pages_do() {
    let p = start(fast_options()).await;
    let token = admin_token(&p).await;
    let http = reqwest::Client::new();
    let t = Some(token.as_str());

    let (status, app) = call(&p, &http, t, Method::POST, "/api/v1/apps", Some(json!({
        "name": "wiki", "url": "https://wiki.example.org", "redirect_uris": ["https://wiki.example.org/cb"]
    }))).await;
    assert_eq!(status, 201, "{app}");
    assert!(app["client_secret"].as_str().unwrap().len() >= 43);
    let (_, apps) = call(&p, &http, t, Method::GET, "/api/v1/apps", None).await;
    assert_eq!(apps["apps"][0]["name"], "wiki");
    assert!(
        apps["apps"][0].get("client_secret").is_none(),
        "the secret is shown once"
    );

    let (status, err) = call(
        &p,
        &http,
        t,
        Method::POST,
        "/api/v1/apps",
        Some(json!({
            "name": "Bad Name", "url": "x", "redirect_uris": []
        })),
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        err["fields"]["name"].is_string() && err["fields"]["url"].is_string(),
        "{err}"
    );

    // Create with roles: one action, with an invitation queued.
    let (status, ada) = call(
        &p,
        &http,
        t,
        Method::POST,
        "/api/v1/users",
        Some(json!({
            "email": "ada@example.org", "name": "Ada", "roles": {"wiki": "admin"}
        })),
    )
    .await;
    assert_eq!(status, 201, "{ada}");
    assert_eq!(ada["roles"]["wiki"], "admin");
    assert_eq!(ada["has_password"], false);
    assert_eq!(p.store.pending_mail().await.unwrap(), 1);
    let (status, err) = call(
        &p,
        &http,
        t,
        Method::POST,
        "/api/v1/users",
        Some(json!({
            "email": "bob@example.org", "name": "Bob", "roles": {"nope": "user"}
        })),
    )
    .await;
    assert_eq!(status, 404, "{err}");
    assert!(
        p.store
            .user_by_email(&stackspin_domain::Email::parse("bob@example.org").unwrap())
            .await
            .unwrap()
            .is_none(),
        "nothing half-saved"
    );
    let (status, err) = call(
        &p,
        &http,
        t,
        Method::POST,
        "/api/v1/users",
        Some(json!({"email": "nope", "name": ""})),
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        err["fields"]["email"].is_string() && err["fields"]["name"].is_string(),
        "{err}"
    );
    let (status, _) = call(
        &p,
        &http,
        t,
        Method::POST,
        "/api/v1/users",
        Some(json!({"email": "ADA@example.org", "name": "Dup"})),
    )
    .await;
    assert_eq!(status, 409);

    // List, search and page.
    for i in 0..5 {
        call(
            &p,
            &http,
            t,
            Method::POST,
            "/api/v1/users",
            Some(json!({"email": format!("u{i}@example.org"), "name": format!("User {i}")})),
        )
        .await;
    }
    let (_, page) = call(
        &p,
        &http,
        t,
        Method::GET,
        "/api/v1/users?q=user&per_page=2&page=2&sort=name",
        None,
    )
    .await;
    assert_eq!(page["total"], 5);
    let names: Vec<&str> = page["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["User 2", "User 3"]);

    // Edit with the version read; a stale version is a conflict, none is refused.
    let id = ada["id"].as_str().unwrap();
    let (_, shown) = call(
        &p,
        &http,
        t,
        Method::GET,
        &format!("/api/v1/users/{id}"),
        None,
    )
    .await;
    let version = shown["version"].as_str().unwrap().to_owned();
    let (status, edited) = call(
        &p,
        &http,
        t,
        Method::PATCH,
        &format!("/api/v1/users/{id}"),
        Some(json!({"name": "Ada L.", "version": version})),
    )
    .await;
    assert_eq!((status, edited["name"].as_str()), (200, Some("Ada L.")));
    let (status, err) = call(
        &p,
        &http,
        t,
        Method::PATCH,
        &format!("/api/v1/users/{id}"),
        Some(json!({"name": "Other", "version": version})),
    )
    .await;
    assert_eq!((status, err["error"].as_str()), (409, Some("conflict")));
    let (status, _) = call(
        &p,
        &http,
        t,
        Method::PATCH,
        &format!("/api/v1/users/{id}"),
        Some(json!({"name": "Other"})),
    )
    .await;
    assert_eq!(status, 428);

    // Roles, audit, deletion.
    let (status, change) = call(
        &p,
        &http,
        t,
        Method::PUT,
        &format!("/api/v1/users/{id}/roles/wiki"),
        Some(json!({"role": "none"})),
    )
    .await;
    assert_eq!((status, change["previous"].as_str()), (200, Some("admin")));
    let (status, _) = call(
        &p,
        &http,
        t,
        Method::PUT,
        &format!("/api/v1/users/{id}/roles/wiki"),
        Some(json!({"role": "owner"})),
    )
    .await;
    assert_eq!(status, 422);
    let (_, audit) = call(
        &p,
        &http,
        t,
        Method::GET,
        "/api/v1/audit?kind=role.changed",
        None,
    )
    .await;
    assert_eq!(audit["events"][0]["actor"], "root@example.org (API token)");
    assert_eq!(audit["events"][0]["detail"]["role"], "none");
    let (status, _) = call(
        &p,
        &http,
        t,
        Method::DELETE,
        &format!("/api/v1/users/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = call(
        &p,
        &http,
        t,
        Method::GET,
        &format!("/api/v1/users/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 404);

    // An admin cannot delete themself (the last admin guard itself is the storage's, tested
    // there and on the pages).
    let (_, root) = call(&p, &http, t, Method::GET, "/api/v1/users?q=root", None).await;
    let root_id = root["users"][0]["id"].as_str().unwrap();
    // The list says what the Dashboard's users list says: two-step, last sign-in, apps.
    assert_eq!(root["users"][0]["two_step"], false);
    assert!(root["users"][0]["apps"].is_array(), "{root}");
    assert!(root["users"][0].get("last_login_at").is_some(), "{root}");
    let (status, err) = call(
        &p,
        &http,
        t,
        Method::DELETE,
        &format!("/api/v1/users/{root_id}"),
        None,
    )
    .await;
    assert_eq!((status, err["error"].as_str()), (409, Some("own_account")));
}

/// An admin helps someone in through the API: without mail, a mailed link is refused and a
/// hand-over link is returned once; the link opens the reset page; both uses are audited.
#[tokio::test]
async fn an_admin_gets_a_link_to_hand_over_when_mail_is_off() {
    let p = start(fast_options()).await;
    let token = admin_token(&p).await;
    let t = Some(token.as_str());
    let http = reqwest::Client::new();
    let ada = p.user("ada@example.org", false).await;
    let path = format!("/api/v1/users/{}/link", ada.id);
    let (status, err) = call(&p, &http, t, Method::POST, &path, Some(json!({}))).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (409, Some("mail_off")),
        "{err}"
    );
    let (status, body) = call(
        &p,
        &http,
        t,
        Method::POST,
        &path,
        Some(json!({"mail": false})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["purpose"].as_str(), body["mailed"].as_bool()),
        (Some("reset"), Some(false))
    );
    let link = body["link"].as_str().unwrap();
    let page = http.get(link).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Choose a new password"), "{page}");
    let (status, _) = call(
        &p,
        &http,
        t,
        Method::POST,
        "/api/v1/users/00000000-0000-0000-0000-000000000000/link",
        Some(json!({"mail": false})),
    )
    .await;
    assert_eq!(status, 404);
    let events = p
        .store
        .audit_events(&stackspin_storage::AuditFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let made = events
        .iter()
        .find(|e| e.kind == "recovery.link_created")
        .unwrap();
    assert_eq!(made.user_email.as_deref(), Some("ada@example.org"));
    assert_eq!(made.actor.as_deref(), Some("root@example.org (API token)"));
}

#[tokio::test]
async fn the_openapi_document_describes_exactly_the_routes_and_is_valid() {
    let p = start(fast_options()).await;
    let resp = reqwest::get(p.url("/api/v1/openapi.json")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().await.unwrap();
    let mut documented: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .filter(|k| *k != "parameters")
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    let mut routed: Vec<(String, String)> = stackspin_web::api::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    documented.sort();
    routed.sort();
    assert_eq!(documented, routed, "openapi.json and the router disagree");

    // And it is a valid OpenAPI 3.1 document.
    let file = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    let out = std::process::Command::new(python())
        .args(["-m", "openapi_spec_validator", &file.display().to_string()])
        .output()
        .unwrap_or_else(|e| panic!("cannot run openapi-spec-validator (run scripts/test): {e}"));
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_api_covers_app_changes_settings_and_the_callers_own_sessions() {
    let p = start(fast_options()).await;
    let token = admin_token(&p).await;
    let t = Some(token.as_str());
    let http = reqwest::Client::new();
    let (_, app) = call(&p, &http, t, Method::POST, "/api/v1/apps", Some(json!({
        "name": "wiki", "url": "https://wiki.example.org", "redirect_uris": ["https://wiki.example.org/cb"]
    }))).await;
    let (status, edited) = call(&p, &http, t, Method::PATCH, "/api/v1/apps/wiki", Some(json!({
        "url": "https://docs.example.org", "redirect_uris": ["https://docs.example.org/cb"], "default_role": "none"
    }))).await;
    assert_eq!(
        (
            status,
            edited["default_role"].as_str(),
            edited["name"].as_str()
        ),
        (200, Some("none"), Some("wiki"))
    );
    let (status, rotated) =
        call(&p, &http, t, Method::POST, "/api/v1/apps/wiki/secret", None).await;
    assert_eq!(status, 200);
    assert_ne!(rotated["client_secret"], app["client_secret"]);
    let (status, s) = call(
        &p,
        &http,
        t,
        Method::PUT,
        "/api/v1/settings",
        Some(json!({"mfa_required": "admins"})),
    )
    .await;
    assert_eq!((status, s["mfa_required"].as_str()), (200, Some("admins")));
    let (status, _) = call(
        &p,
        &http,
        t,
        Method::PUT,
        "/api/v1/settings",
        Some(json!({"mfa_required": "maybe"})),
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = call(&p, &http, t, Method::DELETE, "/api/v1/apps/wiki", None).await;
    assert_eq!(status, 204);
    let (status, _) = call(&p, &http, t, Method::DELETE, "/api/v1/apps/wiki", None).await;
    assert_eq!(status, 404);

    // Any signed-in person: their own account and sessions, not others'.
    let ada = p.user("ada@example.org", false).await;
    let (b1, b2) = (browser(), browser());
    sign_in(&p, &b1, "ada@example.org", PASSWORD).await;
    sign_in(&p, &b2, "ada@example.org", PASSWORD).await;
    let me: Value = b1
        .get(p.url("/api/v1/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], ada.id.to_string());
    let sessions = me["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(
        b1.get(p.url("/api/v1/settings"))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    let other = sessions
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .find(|_| true)
        .unwrap()
        .to_owned();
    let resp = b1
        .delete(p.url(&format!("/api/v1/me/sessions/{other}")))
        .header("x-requested-with", "stackspin")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let left = p.store.sessions_of_user(ada.id).await.unwrap().len();
    assert_eq!(left, 1);
    let resp = b2
        .delete(p.url("/api/v1/me/sessions/not-mine"))
        .header("x-requested-with", "stackspin")
        .send()
        .await
        .unwrap();
    assert!(
        resp.status() == 404 || resp.status() == 401,
        "{}",
        resp.status()
    );
}

#[tokio::test]
async fn the_api_does_batch_actions_the_access_matrix_and_password_changes() {
    let smtp = SmtpServer::start().await;
    let p = start_with(smtp.settings(), fast_options()).await;
    let token = admin_token(&p).await;
    let t = Some(token.as_str());
    let http = reqwest::Client::new();
    p.app(AppSpec::default()).await;
    let mut ids = vec![];
    for i in 0..3 {
        ids.push(
            p.user(&format!("m{i}@example.org"), false)
                .await
                .id
                .to_string(),
        );
    }

    // Batch role change: all three become wiki admins in one call.
    let (status, body) = call(
        &p,
        &http,
        t,
        Method::POST,
        "/api/v1/users/batch",
        Some(json!({
            "action": "set_role", "ids": ids, "app": "wiki", "role": "admin"
        })),
    )
    .await;
    assert_eq!(
        (status, body["changed"].as_array().map(Vec::len)),
        (200, Some(3))
    );
    // Bad input names its fields; an unknown app changes nobody.
    let (status, body) = call(
        &p,
        &http,
        t,
        Method::POST,
        "/api/v1/users/batch",
        Some(json!({
            "action": "set_role", "ids": ids, "role": "boss"
        })),
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        body["fields"]["app"].is_string() && body["fields"]["role"].is_string(),
        "{body}"
    );
    let (status, _) = call(
        &p,
        &http,
        t,
        Method::POST,
        "/api/v1/users/batch",
        Some(json!({
            "action": "set_role", "ids": ids, "app": "nope", "role": "none"
        })),
    )
    .await;
    assert_eq!(status, 404);

    // The matrix shows the effective roles; a new default role applies to new users only.
    let (status, m) = call(
        &p,
        &http,
        t,
        Method::GET,
        "/api/v1/access?per_page=2&page=2",
        None,
    )
    .await;
    assert_eq!((status, m["total"].as_u64()), (200, Some(4)));
    assert_eq!(m["users"].as_array().unwrap().len(), 2);
    assert_eq!(m["users"][0]["email"], "m2@example.org");
    assert_eq!(m["users"][0]["roles"]["wiki"], "admin");
    let (status, d) = call(
        &p,
        &http,
        t,
        Method::PUT,
        "/api/v1/apps/wiki/default-role",
        Some(json!({"role": "none"})),
    )
    .await;
    assert_eq!((status, d["default_role"].as_str()), (200, Some("none")));
    let (status, _) = call(
        &p,
        &http,
        t,
        Method::PUT,
        "/api/v1/apps/wiki/default-role",
        Some(json!({"role": "owner"})),
    )
    .await;
    assert_eq!(status, 422);
    let newcomer = p.user("new@example.org", false).await;
    let (_, app) = call(&p, &http, t, Method::GET, "/api/v1/apps/wiki", None).await;
    assert_eq!(app["default_role"], "none");
    let (_, shown) = call(
        &p,
        &http,
        t,
        Method::GET,
        &format!("/api/v1/users/{}", newcomer.id),
        None,
    )
    .await;
    assert_eq!(shown["roles"]["wiki"], "none");
    let (_, shown) = call(
        &p,
        &http,
        t,
        Method::GET,
        &format!("/api/v1/users/{}", ids[0]),
        None,
    )
    .await;
    assert_eq!(shown["roles"]["wiki"], "admin");

    // Batch delete: all or nothing. An unknown id deletes nobody.
    let (status, _) = call(
        &p,
        &http,
        t,
        Method::POST,
        "/api/v1/users/batch",
        Some(json!({
            "action": "delete", "ids": [ids[0], "00000000-0000-0000-0000-000000000000"]
        })),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(p.store.count_users().await.unwrap(), 5);
    let (status, body) = call(
        &p,
        &http,
        t,
        Method::POST,
        "/api/v1/users/batch",
        Some(json!({
            "action": "delete", "ids": [ids[0], ids[1]]
        })),
    )
    .await;
    assert_eq!(
        (status, body["deleted"].as_array().map(Vec::len)),
        (200, Some(2))
    );
    assert_eq!(p.store.count_users().await.unwrap(), 3);

    // The test email goes through the real SMTP server.
    let (status, _) = call(
        &p,
        &http,
        t,
        Method::POST,
        "/api/v1/settings/test-mail",
        Some(json!({"to": "ops@example.org"})),
    )
    .await;
    assert_eq!(status, 200);
    smtp.wait_for("ops@example.org").await;
    let (status, body) = call(
        &p,
        &http,
        t,
        Method::POST,
        "/api/v1/settings/test-mail",
        Some(json!({"to": "not an address"})),
    )
    .await;
    assert_eq!((status, body["fields"]["to"].is_string()), (422, true));

    // A person changes their own password: the current one is required, other sessions end,
    // the one making the call stays.
    p.user("ada@example.org", false).await;
    let (b1, b2) = (browser(), browser());
    sign_in(&p, &b1, "ada@example.org", PASSWORD).await;
    sign_in(&p, &b2, "ada@example.org", PASSWORD).await;
    let put = |body: Value| {
        b1.put(p.url("/api/v1/me/password"))
            .header("x-requested-with", "stackspin")
            .json(&body)
            .send()
    };
    let resp = put(json!({"current": "wrong password!", "new": "a brand new passphrase"}))
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let resp = put(json!({"current": PASSWORD, "new": "short"}))
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert!(body["fields"]["new"].is_string(), "{body}");
    let resp = put(json!({"current": PASSWORD, "new": "a brand new passphrase"}))
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(is_signed_in(&p, &b1).await);
    assert!(!is_signed_in(&p, &b2).await);
    let b3 = browser();
    sign_in(&p, &b3, "ada@example.org", "a brand new passphrase").await;
    // Log out the others, then everywhere.
    let resp = b1
        .delete(p.url("/api/v1/me/sessions?keep_current=true"))
        .header("x-requested-with", "stackspin")
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["ended"], 1);
    assert!(is_signed_in(&p, &b1).await && !is_signed_in(&p, &b3).await);
    let resp = b1
        .delete(p.url("/api/v1/me/sessions"))
        .header("x-requested-with", "stackspin")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(!is_signed_in(&p, &b1).await);
}

#[tokio::test]
async fn the_api_manages_the_callers_two_step_verification() {
    use stackspin_identity::totp;
    let p = start(fast_options()).await;
    let ada = p.user("ada@example.org", false).await;
    let b = browser();
    sign_in(&p, &b, "ada@example.org", PASSWORD).await;
    let send = |m: Method, path: &str, body: Option<Value>| {
        let mut req = b
            .request(m, p.url(path))
            .header("x-requested-with", "stackspin");
        if let Some(body) = body {
            req = req.json(&body);
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, s) = send(Method::GET, "/api/v1/me/mfa", None).await;
    assert_eq!((status, s["enrolled"].as_bool()), (200, Some(false)));
    let (_, fresh) = send(Method::POST, "/api/v1/me/mfa/secret", None).await;
    let secret = fresh["secret"].as_str().unwrap().to_owned();
    assert!(
        fresh["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    let key = totp::base32_decode(&secret).unwrap();
    let step = chrono::Utc::now().timestamp() / totp::STEP_SECONDS;
    let (status, _) = send(
        Method::PUT,
        "/api/v1/me/mfa",
        Some(json!({"secret": secret, "code": "000000"})),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        p.store.totp_secret(ada.id).await.unwrap(),
        None,
        "nothing stored"
    );
    let (status, on) = send(
        Method::PUT,
        "/api/v1/me/mfa",
        Some(json!({"secret": secret, "code": totp::code_at(&key, step)})),
    )
    .await;
    assert_eq!(status, 200);
    let first: Vec<String> = serde_json::from_value(on["recovery_codes"].clone()).unwrap();
    assert_eq!(first.len(), 10);
    let (status, _) = send(
        Method::PUT,
        "/api/v1/me/mfa",
        Some(json!({"secret": secret, "code": totp::code_at(&key, step + 1)})),
    )
    .await;
    assert_eq!(status, 409);
    // New recovery codes, proven by an old one; the old ones then stop working.
    let (status, again) = send(
        Method::POST,
        "/api/v1/me/mfa/recovery-codes",
        Some(json!({"code": first[0]})),
    )
    .await;
    assert_eq!(status, 200);
    let second: Vec<String> = serde_json::from_value(again["recovery_codes"].clone()).unwrap();
    let (status, _) = send(
        Method::DELETE,
        "/api/v1/me/mfa",
        Some(json!({"code": first[1]})),
    )
    .await;
    assert_eq!(status, 422);
    // When the organisation requires it, it stays on.
    p.store
        .set_setting("mfa_required", "everyone")
        .await
        .unwrap();
    let (status, body) = send(
        Method::DELETE,
        "/api/v1/me/mfa",
        Some(json!({"code": second[0]})),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (409, Some("required")));
    p.store.set_setting("mfa_required", "none").await.unwrap();
    let (status, _) = send(
        Method::DELETE,
        "/api/v1/me/mfa",
        Some(json!({"code": second[1]})),
    )
    .await;
    assert_eq!(status, 204);
    let (_, s) = send(Method::GET, "/api/v1/me/mfa", None).await;
    assert_eq!(s["enrolled"], false);
}

/// What the probe found the API doing against its own document: text/plain rejections,
/// undocumented 400/415, `per_page=501` clamped, an empty `until=` accepted.
#[tokio::test]
async fn bad_requests_get_the_documented_json_errors() {
    let p = start(fast_options()).await;
    let token = admin_token(&p).await;
    let c = reqwest::Client::new();
    for (path, field) in [
        ("/api/v1/users?per_page=501", "per_page"),
        ("/api/v1/users?per_page=0", "per_page"),
        ("/api/v1/users?page=1000001", "page"),
        ("/api/v1/access?per_page=501", "per_page"),
        ("/api/v1/audit?per_page=501", "per_page"),
        ("/api/v1/audit?until=", "until"),
    ] {
        let (status, body) = call(&p, &c, Some(&token), Method::GET, path, None).await;
        assert_eq!(status, 422, "{path}: {body}");
        assert!(body["fields"][field].is_string(), "{path}: {body}");
    }
    // Beyond u32: the query does not parse; still the JSON error, still documented.
    let (status, body) = call(
        &p,
        &c,
        Some(&token),
        Method::GET,
        "/api/v1/users?page=99999999999999",
        None,
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (422, Some("invalid")));
    let send = |ct: Option<&'static str>, body: &'static str| {
        let mut req = c.post(p.url("/api/v1/apps")).bearer_auth(&token).body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        req.send()
    };
    for (ct, body, want) in [
        (None, "{}", 415),
        (Some("text/plain"), "{}", 415),
        (Some("application/json"), "{not json", 400),
        (Some("application/json"), "{\"name\": 5}", 422),
    ] {
        let r = send(ct, body).await.unwrap();
        assert_eq!(r.status().as_u16(), want, "{ct:?} {body}");
        assert_eq!(
            r.headers()["content-type"],
            "application/json",
            "{ct:?} {body}"
        );
        let v: Value = r.json().await.unwrap();
        assert!(v["error"].is_string() && v["message"].is_string(), "{v}");
    }
    // And the document says so, for every operation.
    let doc: Value = serde_json::from_str(stackspin_web::api::OPENAPI).unwrap();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            let responses = &op["responses"];
            assert!(responses.get("400").is_some(), "{method} {path}: no 400");
            if op.get("requestBody").is_some() {
                assert!(responses.get("415").is_some(), "{method} {path}: no 415");
                assert!(responses.get("422").is_some(), "{method} {path}: no 422");
            }
        }
    }
}

/// Without a cluster, installs are recorded (and the catalog's rules refuse what they must);
/// the answers say no cluster is connected, and the page offers the manifests instead.
#[tokio::test]
async fn the_api_installs_apps_from_the_catalog_without_a_cluster() {
    let p = start(fast_options()).await;
    let token = admin_token(&p).await;
    let t = Some(token.as_str());
    let http = reqwest::Client::new();
    let (status, catalog) = call(&p, &http, t, Method::GET, "/api/v1/catalog", None).await;
    assert_eq!(status, 200);
    assert_eq!(catalog["cluster"]["connected"], false);
    let names: Vec<&str> = catalog["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    for app in [
        "nextcloud",
        "zulip",
        "wekan",
        "wordpress",
        "hedgedoc",
        "monitoring",
    ] {
        assert!(names.contains(&app), "{names:?}");
    }
    assert!(!names.contains(&"cert-manager") && !names.contains(&"loki"));

    let (status, row) = call(
        &p,
        &http,
        t,
        Method::PUT,
        "/api/v1/installed-apps/wekan",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 201, "{row}");
    assert_eq!(row["state"], "pending");
    assert_eq!(row["auto_update"], true);
    let (status, _) = call(
        &p,
        &http,
        t,
        Method::PUT,
        "/api/v1/installed-apps/wekan",
        Some(json!({"subdomain": "boards"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, e) = call(
        &p,
        &http,
        t,
        Method::PUT,
        "/api/v1/installed-apps/hedgedoc",
        Some(json!({"subdomain": "boards"})),
    )
    .await;
    assert_eq!(status, 422, "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("used by Wekan"),
        "{e}"
    );
    let (status, _) = call(
        &p,
        &http,
        t,
        Method::PUT,
        "/api/v1/installed-apps/hedgedoc",
        Some(json!({"subdomain": "a.b"})),
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = call(
        &p,
        &http,
        t,
        Method::PUT,
        "/api/v1/installed-apps/nope",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &p,
        &http,
        t,
        Method::PUT,
        "/api/v1/installed-apps/loki",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 422);

    let (status, row) = call(
        &p,
        &http,
        t,
        Method::PUT,
        "/api/v1/installed-apps/wekan/auto-update",
        Some(json!({"auto_update": false})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(row["auto_update"], false);
    let (status, row) = call(
        &p,
        &http,
        t,
        Method::POST,
        "/api/v1/installed-apps/wekan/update",
        None,
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(row["update_now"], true);
    let (status, list) = call(&p, &http, t, Method::GET, "/api/v1/installed-apps", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["apps"][0]["name"], "wekan");
    assert!(list["apps"][0]["url"].is_null(), "no cluster, no address");
    // The page says so, and offers what would be applied.
    let admin = support::browser();
    sign_in(&p, &admin, "root@example.org", PASSWORD).await;
    let page = admin.get(p.url("/admin/catalog")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("No cluster is connected."), "{page}");
    assert!(page.contains("stackspin manifests --domain DOMAIN --ip-address IP --admin-email EMAIL --apps wekan --out DIR"), "{page}");

    let (status, row) = call(
        &p,
        &http,
        t,
        Method::DELETE,
        "/api/v1/installed-apps/wekan?purge=true",
        None,
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(row["uninstalling"], true);
    assert_eq!(row["purge"], true);
    let (status, _) = call(
        &p,
        &http,
        t,
        Method::GET,
        "/api/v1/installed-apps/zulip",
        None,
    )
    .await;
    assert_eq!(status, 404);
    // Members cannot.
    p.user("member@example.org", false).await;
    let b = support::browser();
    sign_in(&p, &b, "member@example.org", PASSWORD).await;
    let resp = b.get(p.url("/api/v1/catalog")).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let resp = b.get(p.url("/admin/catalog")).send().await.unwrap();
    assert_eq!(resp.status(), 403);
}

/// The real catalog on the test bed: installing Wekan through the API registers its OIDC
/// client (the operator tests check its HelmRelease and Secrets); the real chart repository
/// cannot be reached from here, so the state is `failed` with source-controller's error, in
/// the API and on the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_whose_chart_cannot_be_fetched_shows_the_source_error() {
    let catalog = std::sync::Arc::new(stackspin_catalog::Catalog::builtin().unwrap().clone());
    let (p, operator) = start_with_operator(catalog).await;
    let token = admin_token(&p).await;
    let t = Some(token.as_str());
    let http = reqwest::Client::new();
    let (status, row) = call(
        &p,
        &http,
        t,
        Method::PUT,
        "/api/v1/installed-apps/wekan",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 201, "{row}");
    let mut last = Value::Null;
    for _ in 0..240 {
        let (_, row) = call(
            &p,
            &http,
            t,
            Method::GET,
            "/api/v1/installed-apps/wekan",
            None,
        )
        .await;
        last = row;
        if last["state"] == "failed" && !last["reason"].as_str().unwrap_or_default().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert_eq!(last["state"], "failed", "{last}");
    let reason = last["reason"].as_str().unwrap().to_owned();
    assert!(
        reason.contains("wekan.github.io"),
        "the source error, not a guess: {reason}"
    );
    assert_eq!(last["url"], "https://wekan.example.test/");
    let apps = p.store.list_apps().await.unwrap();
    assert!(
        apps.iter().any(|a| a.name.as_str() == "wekan"),
        "its OIDC client"
    );

    let admin = support::browser();
    sign_in(&p, &admin, "root@example.org", PASSWORD).await;
    let page = admin
        .get(p.url("/admin/catalog"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"reason-wekan\""), "{page}");
    assert!(page.contains("wekan.github.io"), "{page}");

    let (status, _) = call(
        &p,
        &http,
        t,
        Method::DELETE,
        "/api/v1/installed-apps/wekan?purge=true",
        None,
    )
    .await;
    assert_eq!(status, 202);
    for _ in 0..240 {
        if p.store.installed_app("wekan").await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(
        p.store.installed_app("wekan").await.unwrap().is_none(),
        "uninstalled"
    );
    operator.stop().await;
}

/// An admin may set a person's password at creation (no invitation then), as the CLI's
/// `--password-stdin` does; it is checked like any chosen password and audited.
#[tokio::test]
async fn an_admin_can_create_a_user_with_a_password() {
    let p = start(fast_options()).await;
    let token = admin_token(&p).await;
    let c = reqwest::Client::new();
    let (status, err) = call(
        &p,
        &c,
        Some(&token),
        Method::POST,
        "/api/v1/users",
        Some(json!({"email": "bo@example.org", "name": "Bo", "password": "short"})),
    )
    .await;
    assert_eq!(status, 422, "{err}");
    assert!(err["fields"]["password"].is_string(), "{err}");
    assert!(
        p.store
            .user_by_email(&stackspin_domain::Email::parse("bo@example.org").unwrap())
            .await
            .unwrap()
            .is_none()
    );

    let (status, user) = call(
        &p,
        &c,
        Some(&token),
        Method::POST,
        "/api/v1/users",
        Some(json!({"email": "bo@example.org", "name": "Bo", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 201, "{user}");
    assert_eq!(user["has_password"], true);
    assert!(user.get("invitation").is_none(), "no invitation: {user}");
    let b = browser();
    sign_in(&p, &b, "bo@example.org", PASSWORD).await;
    assert!(is_signed_in(&p, &b).await);
    let events = p
        .store
        .audit_events(&stackspin_storage::AuditFilter::default())
        .await
        .unwrap();
    let created = events.iter().find(|e| e.kind == "user.created").unwrap();
    assert_eq!(created.detail["password"], "set by the admin");
}
