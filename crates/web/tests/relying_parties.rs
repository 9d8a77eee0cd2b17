//! End-to-end logins with real third-party relying parties: openid-client (npm, OpenID
//! Certified), authlib (Python) and Apache mod_auth_openidc. The test plays the person's
//! browser; each peer does its own discovery, PKCE, nonce and ID-token validation.
//! `scripts/install-test-deps` installs the peers.
#![allow(clippy::unwrap_used)]

mod support;

use std::{
    io::{BufRead, BufReader, Write},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::Value;
use stackspin_domain::{AppName, Role};
use support::*;

fn peers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers")
}

/// A peer process speaking one JSON object per line.
struct Peer {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Peer {
    fn spawn(mut cmd: Command) -> Peer {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {cmd:?} (run scripts/test to install the peers): {e}")
            });
        let out = BufReader::new(child.stdout.take().unwrap());
        Peer { child, out }
    }

    fn read(&mut self) -> Value {
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("peer said {line:?}"));
        assert!(v.get("error").is_none(), "peer failed: {}", v["error"]);
        v
    }

    fn send(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// The browser's part: follow the app's authorization URL through login to the callback.
async fn browse_to_callback(p: &Provider, b: &reqwest::Client, start: &str, email: &str) -> String {
    let mut url = start.to_owned();
    for _ in 0..6 {
        let resp = b.get(&url).send().await.unwrap();
        if resp.status() == 200 {
            // The login page: fill it in, as the person would.
            let page = resp.text().await.unwrap();
            let resp = b
                .post(p.url("/login"))
                .form(&[
                    ("email", email),
                    ("password", PASSWORD),
                    ("csrf", &hidden_value(&page, "csrf")),
                    ("return_to", &hidden_value(&page, "return_to")),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 303);
            url = p.url(&location(&resp));
            continue;
        }
        assert_eq!(resp.status(), 303, "at {url}");
        let next = location(&resp);
        if !next.starts_with('/') && !next.starts_with(&p.base) {
            return next;
        }
        url = if next.starts_with('/') {
            p.url(&next)
        } else {
            next
        };
    }
    panic!("no callback reached from {start}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_logs_in_validates_refreshes_and_logs_out() {
    let p = start(fast_options()).await;
    let user = p.user("ada@example.org", false).await;
    let c = p
        .app(AppSpec {
            name: "node",
            redirect_uri: "http://127.0.0.1:3000/cb",
            post_logout: Some("http://127.0.0.1:3000/bye"),
            ..Default::default()
        })
        .await;
    p.store
        .set_role(&user.email, &AppName::parse("node").unwrap(), Role::Admin)
        .await
        .unwrap();
    let mut cmd = Command::new("node");
    cmd.current_dir(peers_dir()).args([
        "openid-client-rp.mjs",
        &p.base,
        &c.client_id,
        c.secret.as_deref().unwrap(),
        &c.redirect_uri,
        "http://127.0.0.1:3000/bye",
    ]);
    let mut peer = Peer::spawn(cmd);
    let auth = peer.read()["authorization_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = browser();
    let callback = browse_to_callback(&p, &b, &auth, "ada@example.org").await;
    peer.send(&callback);
    let seen = tokio::task::spawn_blocking(move || peer.read())
        .await
        .unwrap();
    assert_eq!(seen["claims"]["sub"], user.id.to_string());
    assert_eq!(seen["claims"]["groups"], serde_json::json!(["admin"]));
    assert_eq!(seen["userinfo"]["email"], "ada@example.org");
    assert_eq!(seen["refreshed_sub"], user.id.to_string());
    assert_eq!(seen["refresh_rotated"], true);

    // RP-initiated logout through the URL the library built.
    let resp = b
        .get(seen["end_session_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), "http://127.0.0.1:3000/bye?state=bye");
    assert_eq!(
        userinfo_status(&p, seen["access_token"].as_str().unwrap()).await,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authlib_logs_in_with_client_secret_post_and_validates_the_id_token() {
    let p = start(fast_options()).await;
    let user = p.user("grace@example.org", false).await;
    let c = p
        .app(AppSpec {
            name: "py",
            redirect_uri: "http://127.0.0.1:5000/auth",
            ..Default::default()
        })
        .await;
    let python = std::env::var("STACKSPIN_TEST_PYTHON").unwrap_or_else(|_| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/peers-venv/bin/python")
            .display()
            .to_string()
    });
    let mut cmd = Command::new(python);
    cmd.current_dir(peers_dir()).args([
        "authlib_rp.py",
        &p.base,
        &c.client_id,
        c.secret.as_deref().unwrap(),
        &c.redirect_uri,
    ]);
    let mut peer = Peer::spawn(cmd);
    let auth = peer.read()["authorization_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let callback = browse_to_callback(&p, &browser(), &auth, "grace@example.org").await;
    peer.send(&callback);
    let seen = tokio::task::spawn_blocking(move || peer.read())
        .await
        .unwrap();
    assert_eq!(seen["claims"]["sub"], user.id.to_string());
    assert_eq!(seen["claims"]["groups"], serde_json::json!(["user"]));
    assert_eq!(seen["userinfo"]["name"], "Test Person");
    assert_eq!(seen["refresh_rotated"], true);
    assert_eq!(seen["refreshed_has_id_token"], true);
}

/// Apache with mod_auth_openidc protecting /protected/ (any user) and /protected/admin/
/// (`groups` must contain `admin`), with back-channel logout registered.
struct Apache {
    child: Child,
    dir: tempfile_dir::Dir,
}

mod tempfile_dir {
    /// A scratch folder readable by Apache's unprivileged user, removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Apache {
    fn start(p: &Provider, port: u16, client: &Client) -> Apache {
        let dir = std::env::temp_dir().join(format!("stackspin-apache-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("www/protected/admin")).unwrap();
        std::fs::write(dir.join("www/protected/index.html"), "members area\n").unwrap();
        std::fs::write(dir.join("www/protected/admin/index.html"), "admin area\n").unwrap();
        let modules = "/usr/lib/apache2/modules";
        let base = format!("http://127.0.0.1:{port}");
        let conf = format!(
            r#"
ServerRoot {dir}
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile {dir}/httpd.pid
ErrorLog {dir}/error.log
LogLevel warn auth_openidc:info
LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule authn_core_module {modules}/mod_authn_core.so
LoadModule authz_user_module {modules}/mod_authz_user.so
LoadModule dir_module {modules}/mod_dir.so
LoadModule auth_openidc_module {modules}/mod_auth_openidc.so
User www-data
Group www-data
DocumentRoot {dir}/www
DirectoryIndex index.html
OIDCProviderMetadataURL {issuer}/.well-known/openid-configuration
OIDCClientID {client_id}
OIDCClientSecret {secret}
OIDCRedirectURI {base}/protected/redirect_uri
OIDCCryptoPassphrase test-only-passphrase-{port}
OIDCPKCEMethod S256
OIDCScope "openid email profile"
OIDCRemoteUserClaim email
OIDCSessionType server-cache
OIDCCacheType shm
<Directory {dir}/www>
  Require all granted
</Directory>
<Location /protected/>
  AuthType openid-connect
  Require valid-user
</Location>
<Location /protected/admin/>
  AuthType openid-connect
  Require claim groups:admin
</Location>
"#,
            dir = dir.display(),
            issuer = p.base,
            client_id = client.client_id,
            secret = client.secret.as_deref().unwrap(),
        );
        std::fs::write(dir.join("httpd.conf"), conf).unwrap();
        let _ = Command::new("chmod")
            .args(["-R", "a+rX", &dir.display().to_string()])
            .status();
        // Detached stdio: Apache's workers must not hold the test's output pipes open.
        let child = Command::new("/usr/sbin/apache2")
            .args([
                "-f",
                &dir.join("httpd.conf").display().to_string(),
                "-DFOREGROUND",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start Apache (run scripts/test to install it): {e}")
            });
        Apache {
            child,
            dir: tempfile_dir::Dir(dir),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Apache {
    /// SIGTERM, not SIGKILL: the parent then stops its workers; killing it would orphan them.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fetches an Apache page as a browser, following redirects between Apache and the provider
/// (logging in when asked). Returns the final status and body.
async fn visit(p: &Provider, b: &reqwest::Client, url: &str, email: &str) -> (u16, String) {
    let mut url = url.to_owned();
    for _ in 0..10 {
        let resp = b.get(&url).send().await.unwrap();
        let status = resp.status().as_u16();
        if status == 200 && url.starts_with(&p.url("/login")) {
            let page = resp.text().await.unwrap();
            let resp = b
                .post(p.url("/login"))
                .form(&[
                    ("email", email),
                    ("password", PASSWORD),
                    ("csrf", &hidden_value(&page, "csrf")),
                    ("return_to", &hidden_value(&page, "return_to")),
                ])
                .send()
                .await
                .unwrap();
            url = p.url(&location(&resp));
            continue;
        }
        if (300..400).contains(&status) {
            let next = location(&resp);
            url = if next.starts_with('/') {
                let origin = url::Url::parse(&url).unwrap();
                format!("{}{}", origin.origin().ascii_serialization(), next)
            } else {
                next
            };
            continue;
        }
        return (status, resp.text().await.unwrap());
    }
    panic!("too many redirects from {url}");
}

async fn wait_for_apache(base: &str, apache: &Apache) {
    for _ in 0..100 {
        if reqwest::get(format!("{base}/")).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("Apache did not start: {}", apache.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mod_auth_openidc_maps_groups_to_admin_and_honours_back_channel_logout() {
    let p = start(fast_options()).await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let redirect = format!("{base}/protected/redirect_uri");
    let bcl = format!("{redirect}?logout=backchannel");
    let c = p
        .app(AppSpec {
            name: "apache",
            redirect_uri: &redirect,
            backchannel: Some(&bcl),
            post_logout: Some(&format!("{base}/")),
            ..Default::default()
        })
        .await;
    let user = p.user("ada@example.org", false).await;
    p.user("root@example.org", true).await;
    let apache = Apache::start(&p, port, &c);
    wait_for_apache(&base, &apache).await;

    let b = browser();
    let (status, body) = visit(&p, &b, &format!("{base}/protected/"), "ada@example.org").await;
    assert_eq!(
        (status, body.as_str()),
        (200, "members area\n"),
        "{}",
        apache.log()
    );
    // A plain user may not enter the admin area: the groups claim says "user".
    let (status, _) = visit(
        &p,
        &b,
        &format!("{base}/protected/admin/"),
        "ada@example.org",
    )
    .await;
    assert_eq!(status, 401, "{}", apache.log());

    // Promote in Stackspin: the back-channel logout ends the Apache session, and the next
    // visit logs in again (silently, the Stackspin session is still there) with the new role.
    p.store
        .set_role(&user.email, &AppName::parse("apache").unwrap(), Role::Admin)
        .await
        .unwrap();
    let mut ended = false;
    for _ in 0..60 {
        if p.store.pending_logouts().await.unwrap() == 0 {
            ended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ended, "logout not delivered: {}", apache.log());
    let (status, body) = visit(
        &p,
        &b,
        &format!("{base}/protected/admin/"),
        "ada@example.org",
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (200, "admin area\n"),
        "{}",
        apache.log()
    );

    // RP-initiated logout through Apache ends the Stackspin session too.
    let (status, _) = visit(
        &p,
        &b,
        &format!(
            "{redirect}?logout={}",
            url::form_urlencoded::byte_serialize(format!("{base}/").as_bytes()).collect::<String>()
        ),
        "ada@example.org",
    )
    .await;
    assert!(status == 200 || status == 404 || status == 403, "{status}");
    let resp = b
        .get(authorize_url(&p, &c, &pkce(), &[("prompt", "none")]))
        .send()
        .await
        .unwrap();
    let loc = location(&resp);
    assert_eq!(query_of(&loc)["error"], "login_required", "{loc}");
}
