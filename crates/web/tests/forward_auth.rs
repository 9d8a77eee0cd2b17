//! The forward-auth endpoint against the protocol of Traefik's `forwardAuth` middleware as
//! documented: Traefik sends every request's `X-Forwarded-Host`, `-Proto` and `-Uri` and the
//! tool host's cookies to `/auth/forward`; a 2xx lets the request through with the
//! `authResponseHeaders` copied to the tool, anything else is returned to the browser as it
//! is (status, `Location`, `Set-Cookie`). Then the same behind a real Traefik (built from its
//! Go module by the test bed), configured as the platform configures it.
#![allow(clippy::unwrap_used)]

mod support;

use reqwest::header::{COOKIE, SET_COOKIE};
use stackspin_domain::{AppName, Role};
use support::*;

const TOOL: &str = "metrics.example.test";

/// What Traefik sends for a browser's request to the tool.
async fn ask(p: &Provider, host: &str, uri: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(p.url("/auth/forward"))
        .header("x-forwarded-host", host)
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-uri", uri)
        .header("x-forwarded-method", "GET");
    if let Some(c) = cookie {
        r = r.header(COOKIE, c);
    }
    r.send().await.unwrap()
}

/// The whole hand-over for a signed-in browser `b`: returns the tool's cookie (name=value).
async fn hand_over(p: &Provider, b: &reqwest::Client, host: &str, uri: &str) -> String {
    let first = ask(p, host, uri, None).await;
    assert_eq!(first.status(), 303, "no cookie: off to the Dashboard");
    let to_dashboard = location(&first);
    assert!(
        to_dashboard.starts_with(&p.url("/auth/handover?rd=")),
        "{to_dashboard}"
    );
    let resp = b.get(&to_dashboard).send().await.unwrap();
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
    let to_tool = location(&resp);
    let prefix = format!("https://{host}/.stackspin/handover?code=");
    assert!(to_tool.starts_with(&prefix), "{to_tool}");
    let path = to_tool.strip_prefix(&format!("https://{host}")).unwrap();
    let redeemed = ask(p, host, path, None).await;
    assert_eq!(redeemed.status(), 303);
    assert_eq!(
        location(&redeemed),
        format!("https://{host}{uri}"),
        "back where the person was going, on the tool's host"
    );
    let set = redeemed.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(
        set.starts_with("__Host-stackspin_tool=")
            && set.contains("Secure")
            && set.contains("HttpOnly")
            && set.contains("Path=/"),
        "{set}"
    );
    // A code works once.
    assert_eq!(ask(p, host, path, None).await.status(), 403);
    set.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn a_tool_behind_forward_auth_signs_people_in_through_the_dashboard() {
    let p = start(fast_options()).await;
    let ada = p.user("ada@example.org", false).await;
    let metrics_name = AppName::parse("metrics").unwrap();
    p.user("bob@example.org", false).await;
    p.app(AppSpec {
        name: "metrics",
        url: &format!("https://{TOOL}/"),
        redirect_uri: &format!("https://{TOOL}/unused"),
        default_role: Role::User,
        ..Default::default()
    })
    .await;
    p.app(AppSpec {
        name: "other",
        url: "https://other.example.test/",
        redirect_uri: "https://other.example.test/unused",
        default_role: Role::User,
        ..Default::default()
    })
    .await;

    // Not signed in: the hand-over sends the browser to log in, and back.
    let anon = browser();
    let first = ask(&p, TOOL, "/graph?g0.expr=up", None).await;
    let resp = anon.get(location(&first)).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    assert!(
        location(&resp).starts_with("/login?return_to="),
        "{}",
        location(&resp)
    );

    // Signed in: through the Dashboard, then the tool's own cookie lets requests pass with
    // who the person is and their role.
    let b = browser();
    sign_in(&p, &b, "ada@example.org", PASSWORD).await;
    let cookie = hand_over(&p, &b, TOOL, "/graph?g0.expr=up").await;
    let ok = ask(&p, TOOL, "/api/v1/query", Some(&cookie)).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-stackspin-email"], "ada@example.org");
    assert_eq!(ok.headers()["x-stackspin-role"], "user");

    // A cookie stolen from this tool is nothing on another tool's host.
    let stolen = ask(&p, "other.example.test", "/", Some(&cookie)).await;
    assert_eq!(stolen.status(), 303, "sent to sign in, not let through");
    // A code for one host is burnt, not honoured, on another.
    let first = ask(&p, TOOL, "/", None).await;
    let to_tool = location(&b.get(location(&first)).send().await.unwrap());
    let path = to_tool.strip_prefix(&format!("https://{TOOL}")).unwrap();
    assert_eq!(
        ask(&p, "other.example.test", path, None).await.status(),
        403
    );
    assert_eq!(ask(&p, TOOL, path, None).await.status(), 403, "burnt");

    // Role "no access": refused, on the next request already.
    p.store
        .set_role(&ada.email, &metrics_name, Role::None)
        .await
        .unwrap();
    assert_eq!(ask(&p, TOOL, "/", Some(&cookie)).await.status(), 403);
    // ...and no new hand-over either.
    let first = ask(&p, TOOL, "/", None).await;
    assert_eq!(b.get(location(&first)).send().await.unwrap().status(), 403);
    p.store
        .set_role(&ada.email, &metrics_name, Role::Admin)
        .await
        .unwrap();
    let ok = ask(&p, TOOL, "/", Some(&cookie)).await;
    assert_eq!(ok.headers()["x-stackspin-role"], "admin");

    // Signing out of the Dashboard ends the tool's session too.
    let page = b
        .get(p.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden_value(&page, "csrf");
    b.post(p.url("/logout"))
        .form(&[("csrf", csrf.as_str()), ("confirm", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(ask(&p, TOOL, "/", Some(&cookie)).await.status(), 303);

    // A deleted person's cookie stops working.
    let bob = browser();
    sign_in(&p, &bob, "bob@example.org", PASSWORD).await;
    let bobs = hand_over(&p, &bob, TOOL, "/").await;
    assert_eq!(ask(&p, TOOL, "/", Some(&bobs)).await.status(), 200);
    p.store
        .delete_user(&stackspin_domain::Email::parse("bob@example.org").unwrap())
        .await
        .unwrap();
    assert_eq!(ask(&p, TOOL, "/", Some(&bobs)).await.status(), 303);

    // Requests that did not come through the ingress, or for hosts nobody registered.
    let direct = reqwest::get(p.url("/auth/forward")).await.unwrap();
    assert_eq!(direct.status(), 400);
    assert_eq!(
        ask(&p, "nowhere.example.test", "/", None).await.status(),
        403
    );
    // The hand-over never redirects to a host that is not a registered tool.
    let open = b
        .get(p.url("/auth/handover?rd=https%3A%2F%2Fevil.example.net%2F"))
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), 403);
}

#[tokio::test]
async fn an_expired_dashboard_session_does_not_let_a_tool_in() {
    let p = start(fast_options()).await;
    p.user("ada@example.org", false).await;
    p.app(AppSpec {
        name: "metrics",
        url: &format!("https://{TOOL}/"),
        redirect_uri: &format!("https://{TOOL}/unused"),
        ..Default::default()
    })
    .await;
    let b = browser();
    sign_in(&p, &b, "ada@example.org", PASSWORD).await;
    let cookie = hand_over(&p, &b, TOOL, "/").await;
    assert_eq!(ask(&p, TOOL, "/", Some(&cookie)).await.status(), 200);
    p.store.expire_all_sessions_for_tests().await.unwrap();
    assert_eq!(ask(&p, TOOL, "/", Some(&cookie)).await.status(), 303);
}

/// A tool that answers with who Traefik says the person is.
async fn echo_tool() -> u16 {
    use axum::{Router, http::HeaderMap, routing::get};
    let app = Router::new().fallback(get(|h: HeaderMap| async move {
        let v = |k: &str| {
            h.get(k)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_string()
        };
        format!(
            "email={} role={} host={}",
            v("x-stackspin-email"),
            v("x-stackspin-role"),
            v("x-forwarded-host")
        )
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

struct Traefik {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for Traefik {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Traefik with one HTTPS entry point (its default self-signed certificate), a router for
/// the tool's host through the forward-auth middleware as the platform writes it
/// (`trustForwardHeader: false`, the three identity headers), to the tool.
fn traefik(port: u16, tool_host: &str, provider: &str, tool_port: u16) -> Traefik {
    let dir = tempfile::tempdir().unwrap();
    let dynamic = format!(
        "http:\n  routers:\n    tool:\n      rule: \"Host(`{tool_host}`)\"\n      entryPoints: [websecure]\n      middlewares: [forward-auth]\n      service: tool\n      tls: {{}}\n  middlewares:\n    forward-auth:\n      forwardAuth:\n        address: \"{provider}/auth/forward\"\n        trustForwardHeader: false\n        authResponseHeaders: [X-Stackspin-Email, X-Stackspin-Name, X-Stackspin-Role]\n  services:\n    tool:\n      loadBalancer:\n        servers:\n          - url: \"http://127.0.0.1:{tool_port}\"\n"
    );
    std::fs::write(dir.path().join("dynamic.yaml"), dynamic).unwrap();
    let child = std::process::Command::new(stackspin_testbed::TestBed::bin("traefik"))
        .arg(format!("--entryPoints.websecure.address=127.0.0.1:{port}"))
        .arg(format!(
            "--providers.file.filename={}",
            dir.path().join("dynamic.yaml").display()
        ))
        .arg("--global.checkNewVersion=false")
        .arg("--global.sendAnonymousUsage=false")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("traefik.log")).unwrap())
        .spawn()
        .expect("traefik runs (the test bed builds it: scripts/testbed build)");
    Traefik { child, _dir: dir }
}

#[tokio::test]
async fn behind_a_real_traefik_the_tool_sees_who_signed_in_and_nothing_forged() {
    let p = start(fast_options()).await;
    let ada = p.user("ada@example.org", false).await;
    let port = free_port();
    let tool = format!("{TOOL}:{port}");
    p.app(AppSpec {
        name: "metrics",
        url: &format!("https://{tool}/"),
        redirect_uri: &format!("https://{tool}/.stackspin/handover"),
        default_role: Role::User,
        ..Default::default()
    })
    .await;
    let tool_port = echo_tool().await;
    let _traefik = traefik(port, TOOL, p.base.trim_end_matches('/'), tool_port);
    // A browser that reaches the tool's host through Traefik on loopback.
    let client = || {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .danger_accept_invalid_certs(true)
            .resolve(TOOL, std::net::SocketAddr::from(([127, 0, 0, 1], port)))
            .build()
            .unwrap()
    };
    let b = client();
    let at = |path: &str| format!("https://{tool}{path}");
    // Traefik loads its file configuration a moment after it starts.
    let mut first = None;
    for _ in 0..100 {
        if let Ok(r) = b.get(at("/graph")).send().await
            && r.status() != 404
        {
            first = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let first = first.expect("traefik routes the tool's host");
    assert_eq!(first.status(), 303, "not signed in: off to the Dashboard");
    let to_dashboard = location(&first);
    assert!(
        to_dashboard.starts_with(&p.url("/auth/handover?rd=")),
        "{to_dashboard}"
    );

    sign_in(&p, &b, "ada@example.org", PASSWORD).await;
    let resp = b.get(&to_dashboard).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    let to_tool = location(&resp);
    assert!(
        to_tool.starts_with(&at("/.stackspin/handover?code=")),
        "{to_tool}"
    );
    let back = b.get(&to_tool).send().await.unwrap();
    assert_eq!(
        back.status(),
        303,
        "the code becomes the tool's own session"
    );
    assert_eq!(
        location(&back),
        at("/graph"),
        "Traefik passes it on as it is"
    );

    // Through: the tool learns who it is from Traefik, and a browser cannot forge it.
    let ok = b
        .get(at("/graph"))
        .header("x-stackspin-email", "mallory@example.org")
        .header("x-stackspin-role", "admin")
        .header("x-forwarded-host", "other.example.test")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.text().await.unwrap(),
        format!("email=ada@example.org role=user host={tool}")
    );

    // Another browser without a session does not get through; nor does Ada without access.
    assert_eq!(
        client().get(at("/graph")).send().await.unwrap().status(),
        303
    );
    p.store
        .set_role(&ada.email, &AppName::parse("metrics").unwrap(), Role::None)
        .await
        .unwrap();
    assert_eq!(b.get(at("/graph")).send().await.unwrap().status(), 403);
}
