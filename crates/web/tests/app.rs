//! The control plane over a real socket: probes, metrics, headers.
#![allow(clippy::unwrap_used)]

mod support;

use stackspin_domain::settings::{RawSettings, Settings};
use stackspin_storage::{Store, testing::TestDb};
use stackspin_web::Application;

struct TestApp {
    base: String,
    metrics: String,
    store: Store,
    _db: TestDb,
    client: reqwest::Client,
}

/// Starts an application on a random loopback port with a fresh SQLite database.
async fn spawn_app() -> TestApp {
    let db = TestDb::sqlite().await;
    let settings = Settings::resolve(RawSettings {
        listen: Some("127.0.0.1:0".into()),
        metrics_listen: Some("127.0.0.1:0".into()),
        ..Default::default()
    })
    .unwrap();
    let app = Application::build(&settings, db.store.clone())
        .await
        .unwrap();
    let base = format!("http://{}", app.local_addr());
    let metrics = format!("http://{}", app.metrics_addr().unwrap());
    assert_eq!(app.public_url().as_str(), base);
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    TestApp {
        base,
        metrics,
        store: db.store.clone(),
        _db: db,
        client: reqwest::Client::new(),
    }
}

impl TestApp {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn healthz_and_readyz_answer_ok() {
    let app = spawn_app().await;
    let r = app.get("/healthz").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok\n");
    assert_eq!(app.get("/readyz").await.status(), 200);
}

#[tokio::test]
async fn readyz_is_503_when_the_database_is_gone() {
    let app = spawn_app().await;
    app.store.close().await;
    let r = app.get("/readyz").await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.text().await.unwrap(), "database unavailable\n");
    // Liveness does not depend on the database: restarting would not help.
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn metrics_count_requests_by_route_template() {
    let app = spawn_app().await;
    for _ in 0..3 {
        app.get("/healthz").await;
    }
    app.get("/no/such/page").await;
    // Not on the public port: only on the metrics address.
    assert_eq!(app.get("/metrics").await.status(), 404);
    let r = app
        .client
        .get(format!("{}/metrics", app.metrics))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    let line = body
        .lines()
        .find(|l| {
            l.starts_with("stackspin_http_requests_total{")
                && l.contains("route=\"/healthz\"")
                && l.contains("status=\"200\"")
        })
        .unwrap_or_else(|| panic!("no healthz counter in:\n{body}"));
    assert!(line.ends_with(" 3"), "{line}");
    assert!(
        body.lines()
            .any(|l| l.contains("route=\"unmatched\"") && l.contains("status=\"404\"")),
        "{body}"
    );
    assert!(body.contains("# TYPE stackspin_http_request_duration_seconds histogram"));
    assert!(body.contains("stackspin_http_request_duration_seconds_bucket{"));
    assert!(!body.contains("/no/such/page"));
}

#[tokio::test]
async fn pages_carry_security_headers() {
    let app = spawn_app().await;
    let r = app.get("/login").await;
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let html = r.text().await.unwrap();
    assert!(html.contains("<h1>Log in</h1>"), "{html}");
}

#[tokio::test]
async fn graceful_shutdown_stops_the_server() {
    let db = TestDb::sqlite().await;
    let settings = Settings::resolve(RawSettings {
        listen: Some("127.0.0.1:0".into()),
        ..Default::default()
    })
    .unwrap();
    let app = Application::build(&settings, db.store.clone())
        .await
        .unwrap();
    let addr = app.local_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    let url = format!("http://{addr}/healthz");
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    tx.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), server)
        .await
        .expect("server stops within 5 s")
        .unwrap()
        .unwrap();
    assert!(reqwest::get(&url).await.is_err());
}

#[tokio::test]
async fn binding_a_taken_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let db = TestDb::sqlite().await;
    let settings = Settings::resolve(RawSettings {
        listen: Some(taken.local_addr().unwrap().to_string()),
        ..Default::default()
    })
    .unwrap();
    let err = Application::build(&settings, db.store.clone())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.starts_with("cannot listen on 127.0.0.1:"), "{err}");
    assert_eq!(
        err.matches("in use").count(),
        1,
        "the cause is named once: {err}"
    );
}

#[tokio::test]
async fn an_early_refusal_keeps_the_connection_usable() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // 64 KiB of JSON to an endpoint that refuses strangers before reading the body, then
    // a second request on the same connection.
    let body = format!("{{\"email\":\"{}@example.org\"}}", "a".repeat(64 * 1024));
    let first = format!(
        "POST /api/v1/users HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let second = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    conn.write_all(first.as_bytes()).await.unwrap();
    conn.write_all(second.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        conn.read_to_end(&mut answer),
    )
    .await
    .unwrap()
    .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 2, "{answer}");
    assert!(answer.contains("HTTP/1.1 200 OK"), "{answer}");
}

#[tokio::test]
async fn half_sent_headers_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let db = TestDb::sqlite().await;
    let settings = Settings::resolve(RawSettings {
        listen: Some("127.0.0.1:0".into()),
        ..Default::default()
    })
    .unwrap();
    let options = stackspin_web::ProviderOptions {
        server: stackspin_web::ServerOptions {
            header_read_timeout: std::time::Duration::from_millis(500),
            ..Default::default()
        },
        ..Default::default()
    };
    let app = Application::build_with(&settings, db.store.clone(), options)
        .await
        .unwrap();
    let addr = app.local_addr();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    for conn in [&mut idle, &mut slow] {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            conn.read_to_end(&mut buf),
        )
        .await
        .expect("the server closes the connection");
        // Closed (or reset) without an answer: nothing was ever a complete request.
        if read.is_ok() {
            assert!(buf.is_empty(), "{}", String::from_utf8_lossy(&buf));
        }
    }
}

/// The value of the one sample whose line starts with `series` (name and labels).
fn sample(body: &str, series: &str) -> f64 {
    let line = body
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .unwrap_or_else(|| panic!("no {series} in:\n{body}"));
    line[series.len()..].trim().parse().unwrap()
}

#[tokio::test]
async fn metrics_report_people_sign_ins_apps_and_queues() {
    use stackspin_storage::{AppState, OutgoingMail, ReleaseStatus};
    let p = support::start_with(
        RawSettings {
            metrics_listen: Some("127.0.0.1:0".into()),
            ..Default::default()
        },
        support::fast_options(),
    )
    .await;
    let ada = p.user("ada@example.org", true).await;
    p.user("bob@example.org", false).await;
    // An invited admin cannot sign in yet, so is not counted among admins.
    p.store
        .create_user(&stackspin_domain::NewUser {
            email: stackspin_domain::Email::parse("cy@example.org").unwrap(),
            name: stackspin_domain::UserName::parse("Cy").unwrap(),
            password_hash: None,
            is_admin: true,
        })
        .await
        .unwrap();
    p.store
        .set_totp(ada.id, Some("JBSWY3DPEHPK3PXP"), &[])
        .await
        .unwrap();

    let b = support::browser();
    support::sign_in(&p, &b, "bob@example.org", "wrong password").await;
    support::sign_in(&p, &b, "bob@example.org", "not it either").await;
    support::sign_in(&p, &b, "bob@example.org", support::PASSWORD).await;

    p.store
        .request_install("wekan", None, true, "7.0.0")
        .await
        .unwrap();
    p.store
        .record_app_status(
            "wekan",
            &ReleaseStatus {
                state: AppState::Failed,
                reason: "install failed".into(),
                running_version: Some("7.0.0".into()),
                latest_version: Some("7.1.0".into()),
            },
        )
        .await
        .unwrap();
    // No mail server is configured, so nothing takes the mail from the queue.
    p.store
        .queue_mail(&OutgoingMail {
            to: "bob@example.org".into(),
            subject: "Hello".into(),
            body: "Hi".into(),
        })
        .await
        .unwrap();

    let body = reqwest::get(p.metrics.clone().unwrap())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(sample(&body, "stackspin_users"), 3.0);
    assert_eq!(sample(&body, "stackspin_users_active"), 2.0);
    assert_eq!(sample(&body, "stackspin_users_mfa"), 1.0);
    assert_eq!(sample(&body, "stackspin_admins"), 1.0);
    assert_eq!(
        sample(&body, "stackspin_logins_total{result=\"failure\"}"),
        2.0
    );
    assert_eq!(
        sample(&body, "stackspin_logins_total{result=\"success\"}"),
        1.0
    );
    assert_eq!(
        sample(&body, "stackspin_app_state{app=\"wekan\",state=\"failed\"}"),
        1.0
    );
    assert_eq!(
        sample(&body, "stackspin_app_state{app=\"wekan\",state=\"ready\"}"),
        0.0
    );
    assert_eq!(
        sample(&body, "stackspin_app_update_available{app=\"wekan\"}"),
        1.0
    );
    assert_eq!(
        sample(&body, "stackspin_queue_pending{queue=\"mail\"}"),
        1.0
    );
    assert_eq!(
        sample(&body, "stackspin_queue_pending{queue=\"logout\"}"),
        0.0
    );
    assert!(sample(&body, "stackspin_queue_oldest_age_seconds{queue=\"mail\"}") >= 0.0);
    assert_eq!(
        sample(
            &body,
            "stackspin_queue_oldest_age_seconds{queue=\"logout\"}"
        ),
        0.0
    );
    // No cluster: no operator series.
    assert!(!body.contains("stackspin_operator_rounds"), "{body}");

    // Uninstalled and forgotten, the app's series end.
    p.store.request_uninstall("wekan", false).await.unwrap();
    p.store.forget_installed_app("wekan", false).await.unwrap();
    let body = reqwest::get(p.metrics.clone().unwrap())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!body.contains("app=\"wekan\""), "{body}");
}
