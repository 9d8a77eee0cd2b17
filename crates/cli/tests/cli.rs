//! The `stackspin` binary end to end, as an operator uses it: real processes, a real socket,
//! SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)]

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;

mod support;
use support::{Server, Site, assert_one_line_error, stderr_line};

/// The operator's whole first day, on one backend.
async fn operator_story(site: Site) {
    let server = Server::start(&site, "admin@example.org");
    let ready = reqwest::get(server.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);

    let creds = site.json(&["admin-credentials"]);
    assert_eq!(creds["email"], "admin@example.org");
    assert_eq!(creds["still_valid"], true);
    let password = creds["password"].as_str().unwrap().to_owned();
    assert!(password.len() >= 20, "{password}");
    // The server listens on a port of its own choosing: the commands name that one.
    let served = format!("http://{}", server.addr);
    assert_eq!(creds["login_url"], served.as_str());

    // Admin commands work on the database while the server runs.
    let alice = site.json(&["user", "add", "alice@example.org", "--name", "Alice"]);
    assert_eq!(alice["has_password"], false);
    assert!(alice.get("password_hash").is_none());
    // No outgoing mail here: a mailed link is refused, a printed one is handed over.
    assert_one_line_error(
        &site.run(&["user", "link", "alice@example.org"]),
        "outgoing mail is not set up",
    );
    let handed = site.json(&["user", "link", "alice@example.org", "--print"]);
    assert_eq!(handed["purpose"], "invite");
    let link = handed["link"].as_str().unwrap();
    assert!(
        link.starts_with(&format!("{served}/reset?token=")),
        "{link}"
    );
    let page = reqwest::get(link).await.unwrap().text().await.unwrap();
    assert!(page.contains("Welcome to Stackspin"), "{page}");
    let out = site.run_stdin(
        &[
            "user",
            "add",
            "bob@example.org",
            "--name",
            "Bob",
            "--admin",
            "--password-stdin",
            "--json",
        ],
        "a long enough password\n",
    );
    assert!(out.status.success(), "{}", stderr_line(&out));
    let bob: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (bob["is_admin"].as_bool(), bob["has_password"].as_bool()),
        (Some(true), Some(true))
    );

    let listed = site.json(&["user", "list"]);
    let emails: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        ["admin@example.org", "alice@example.org", "bob@example.org"]
    );

    let reg = site.json(&[
        "app",
        "register",
        "wiki",
        "--url",
        "https://wiki.example.org",
        "--redirect-uri",
        "https://wiki.example.org/oidc/callback",
        "--redirect-uri",
        "http://127.0.0.1:9999/cb",
        "--post-logout-redirect-uri",
        "https://wiki.example.org/",
        "--backchannel-logout-uri",
        "http://wiki.svc:8080/logout",
    ]);
    let client_id = reg["client_id"].as_str().unwrap().to_owned();
    let secret = reg["client_secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 43);
    assert_eq!(
        reg["issuer"],
        served.as_str(),
        "the issuer the server serves"
    );
    let apps = site.run(&["app", "list", "--json"]);
    let apps_text = String::from_utf8(apps.stdout).unwrap();
    assert!(
        !apps_text.contains(&secret),
        "the secret is shown once only"
    );
    let apps: Value = serde_json::from_str(&apps_text).unwrap();
    assert_eq!(apps[0]["client_id"], client_id.as_str());
    assert_eq!(apps[0]["public"], false);
    assert_eq!(apps[0]["redirect_uris"].as_array().unwrap().len(), 2);

    let public = site.json(&[
        "app",
        "register",
        "spa",
        "--public",
        "--url",
        "http://localhost:3000",
        "--redirect-uri",
        "http://localhost:3000/cb",
    ]);
    assert_eq!(public["client_secret"], Value::Null);

    let change = site.json(&["user", "set-role", "alice@example.org", "wiki", "admin"]);
    assert_eq!(
        (change["previous"].as_str(), change["role"].as_str()),
        (Some("user"), Some("admin"))
    );
    let change = site.json(&["user", "set-role", "ALICE@example.org", "wiki", "none"]);
    assert_eq!(change["previous"], "admin");

    let audit = site.json(&["audit", "--kind", "role.", "--user", "alice@example.org"]);
    let kinds: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["role.changed", "role.changed"]);
    assert_eq!(audit[0]["actor"], "cli");
    assert_eq!(audit[0]["detail"]["role"], "none");
    let ended = site.json(&["user", "logout", "alice@example.org"]);
    assert_eq!(ended["app_notices"], 0);
    let rotated = site.json(&["keys", "rotate"]);
    let new_kids: Vec<String> = rotated["new_kids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(new_kids.len(), 2);

    site.json(&["user", "delete", "alice@example.org"]);
    site.json(&["app", "remove", "spa"]);
    assert_eq!(site.json(&["user", "list"]).as_array().unwrap().len(), 2);
    assert_eq!(site.json(&["app", "list"]).as_array().unwrap().len(), 1);

    let logs = server.stop();
    let joined = logs.join("\n");
    assert!(
        !joined.contains(&password),
        "setup password leaked into logs"
    );
    assert!(!joined.contains(&secret), "client secret leaked into logs");
    for line in &logs {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
    }

    // A restart neither creates a second admin nor changes the setup credentials.
    let server = Server::start(&site, "other@example.org");
    assert_eq!(
        reqwest::get(server.url("/readyz")).await.unwrap().status(),
        200
    );
    server.stop();
    let again = site.json(&["admin-credentials"]);
    assert_eq!(again["password"], password.as_str());
    assert_eq!(site.json(&["user", "list"]).as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_story_on_sqlite() {
    operator_story(Site::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_story_on_postgres() {
    operator_story(Site::postgres().await).await;
}

#[test]
fn help_works_without_config_cluster_or_database() {
    let site = Site {
        dir: tempfile::tempdir().unwrap(),
        // Unreachable on purpose: --help must not try it.
        database_url: "postgres://nobody:x@127.0.0.1:1/none".into(),
    };
    let commands: &[&[&str]] = &[
        &[],
        &["serve"],
        &["admin-credentials"],
        &["user"],
        &["user", "add"],
        &["user", "list"],
        &["user", "delete"],
        &["user", "set-role"],
        &["app"],
        &["app", "register"],
        &["app", "list"],
        &["app", "remove"],
        &["require-mfa"],
        &["keys"],
        &["keys", "rotate"],
        &["audit"],
        &["user", "logout"],
        &["api-token", "create"],
        &["create"],
        &["install"],
        &["info"],
        &["secrets"],
        &["purge"],
        &["node"],
        &["node", "add"],
        &["manifests"],
        &["db", "snapshot"],
        &["db", "restore-snapshot"],
        &["backup"],
        &["backup", "list"],
        &["backup", "create"],
        &["backup", "show"],
        &["restore"],
        &["restore", "list"],
        &["restore", "status"],
    ];
    for args in commands {
        let mut all = args.to_vec();
        all.push("--help");
        let out = site
            .cmd(&all)
            .env("STACKSPIN_CONFIG", "/nonexistent/stackspin.toml")
            .output()
            .unwrap();
        assert!(out.status.success(), "{all:?}: {}", stderr_line(&out));
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("Usage: stackspin"), "{all:?}: {text}");
    }
    assert_eq!(std::fs::read_dir(site.dir.path()).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_one_clear_line_and_changes_nothing() {
    let site = Site::postgres().await;
    site.json(&["user", "add", "taken@example.org", "--name", "T"]);
    site.json(&[
        "app",
        "register",
        "wiki",
        "--url",
        "https://wiki.example.org",
        "--redirect-uri",
        "https://wiki.example.org/cb",
    ]);
    let cases: &[(&[&str], &str)] = &[
        (
            &["user", "add", "not-an-email", "--name", "X"],
            "invalid email address",
        ),
        (
            &["user", "add", "TAKEN@example.org", "--name", "X"],
            "already exists",
        ),
        (
            &["user", "add", "x@example.org", "--name", "  "],
            "invalid name",
        ),
        (
            &["user", "delete", "ghost@example.org"],
            "no user with email ghost@example.org",
        ),
        (
            &["user", "set-role", "taken@example.org", "nope", "user"],
            "no app named nope",
        ),
        (
            &["user", "set-role", "taken@example.org", "wiki", "owner"],
            "unknown role \"owner\"",
        ),
        (
            &["user", "set-role", "ghost@example.org", "wiki", "user"],
            "no user with email",
        ),
        (
            &[
                "app",
                "register",
                "wiki",
                "--url",
                "https://w.example.org",
                "--redirect-uri",
                "https://w.example.org/cb",
            ],
            "an app named wiki already exists",
        ),
        (
            &[
                "app",
                "register",
                "Bad Name",
                "--url",
                "https://w.example.org",
                "--redirect-uri",
                "https://w.example.org/cb",
            ],
            "invalid app name",
        ),
        (
            &[
                "app",
                "register",
                "w2",
                "--url",
                "not a url",
                "--redirect-uri",
                "https://w.example.org/cb",
            ],
            "invalid app URL",
        ),
        (
            &[
                "app",
                "register",
                "w3",
                "--url",
                "https://w.example.org",
                "--redirect-uri",
                "http://w.example.org/cb",
            ],
            "invalid redirect URI",
        ),
        (
            &[
                "app",
                "register",
                "w4",
                "--url",
                "https://w.example.org",
                "--redirect-uri",
                "https://w.example.org/cb#x",
            ],
            "#fragment",
        ),
        (&["app", "remove", "nope"], "no app named nope"),
        (
            &["--log-format", "xml", "user", "list"],
            "invalid log_format",
        ),
        (
            &["--database-url", "mysql://h/d", "user", "list"],
            "invalid database_url",
        ),
        (
            &[
                "--database-url",
                "postgres://u:hunter2@127.0.0.1:1/d",
                "user",
                "list",
            ],
            "cannot reach the database at 127.0.0.1:1",
        ),
        (&["serve", "--listen", "localhost"], "invalid listen"),
        (
            &["serve", "--public-url", "http://sso.example.org"],
            "use https",
        ),
        (
            &["--config", "/nonexistent.toml", "user", "list"],
            "cannot read config file",
        ),
    ];
    for (args, expected) in cases {
        let out = site.run(args);
        assert_one_line_error(&out, expected);
        assert!(!stderr_line(&out).contains("hunter2"));
    }
    let out = site.run_stdin(
        &[
            "user",
            "add",
            "p@example.org",
            "--name",
            "P",
            "--password-stdin",
        ],
        "short\n",
    );
    assert_one_line_error(&out, "password too short");
    let out = site.run_stdin(
        &[
            "user",
            "add",
            "p@example.org",
            "--name",
            "P",
            "--password-stdin",
        ],
        "aaaaaaaaaaaa\n",
    );
    assert_one_line_error(&out, "password too easy to guess: repeated characters");

    // Nothing was half-written by any of the failures.
    assert_eq!(site.json(&["user", "list"]).as_array().unwrap().len(), 1);
    assert_eq!(site.json(&["app", "list"]).as_array().unwrap().len(), 1);
}

#[test]
fn admin_commands_do_not_create_a_missing_sqlite_database() {
    let site = Site::sqlite();
    let out = site.run(&["user", "list"]);
    assert_one_line_error(&out, "no database at");
    assert!(!site.dir.path().join("data").exists());
}

#[test]
fn first_serve_without_admin_email_explains_what_to_do() {
    let site = Site::sqlite();
    let out = site.run(&["serve", "--listen", "127.0.0.1:0"]);
    // `serve` logs to stderr as it starts; the error is the one last line after the logs.
    let err = stderr_line(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let last = err.lines().last().unwrap();
    assert!(
        last.starts_with("error: ") && last.contains("pass --admin-email"),
        "{err}"
    );
    assert_eq!(err.matches("error:").count(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// The installer chooses the setup password (so it can show it from the cluster's Secret);
/// `serve` takes it from a file, and refuses a weak or unreadable one before starting.
#[test]
fn serve_takes_the_setup_password_from_a_file() {
    let site = Site::sqlite();
    let file = site.dir.path().join("setup-password");
    std::fs::write(&file, "short\n").unwrap();
    let out = site.run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--admin-email",
        "admin@example.test",
        "--setup-password-file",
        file.to_str().unwrap(),
    ]);
    let err = stderr_line(&out);
    assert!(err.contains("at least 16 characters"), "{err}");
    assert!(
        !site.dir.path().join("data").exists(),
        "nothing was created"
    );

    std::fs::write(&file, "Chosen-by-the-installer-1234\n").unwrap();
    let server = Server::start_with(
        &site,
        "admin@example.test",
        &[],
        &["--setup-password-file", file.to_str().unwrap()],
    );
    let creds = site.json(&["admin-credentials"]);
    assert_eq!(creds["password"], "Chosen-by-the-installer-1234");
    assert_eq!(creds["still_valid"], true);
    server.stop();
}

#[test]
fn config_file_then_environment_then_flags() {
    let site = Site::sqlite();
    let config = site.dir.path().join("stackspin.toml");
    let data = site.dir.path().join("from-config");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:1111\"\ndata_dir = \"{}\"\n",
            data.display()
        ),
    )
    .unwrap();
    // The config file's data_dir is used when nothing overrides it.
    let out = site
        .cmd(&["--config", config.to_str().unwrap(), "user", "list"])
        .env_remove("STACKSPIN_DATABASE_URL")
        .output()
        .unwrap();
    assert_one_line_error(&out, &format!("no database at {}", data.display()));

    let issuer = |extra_env: &[(&str, &str)], flags: &[&str]| -> String {
        let mut args = vec!["--config", config.to_str().unwrap()];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[
            "app",
            "register",
            "a",
            "--url",
            "https://a.example.org",
            "--redirect-uri",
            "https://a.example.org/cb",
            "--json",
        ]);
        let mut c = site.cmd(&args);
        for (k, v) in extra_env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "{}", stderr_line(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        // Remove it again so the next call can register the same name.
        site.run(&["--config", config.to_str().unwrap(), "app", "remove", "a"]);
        v["issuer"].as_str().unwrap().to_owned()
    };
    // Create the SQLite database the site points at.
    let server = Server::start(&site, "admin@example.org");
    let served = format!("http://{}", server.addr);
    server.stop();
    // The commands name the server as it served (its recorded public URL), whatever
    // listen address they were given; an explicit public URL still wins.
    assert_eq!(issuer(&[], &[]), served);
    assert_eq!(
        issuer(&[("STACKSPIN_LISTEN", "127.0.0.1:2222")], &[]),
        served
    );
    assert_eq!(
        issuer(&[("STACKSPIN_PUBLIC_URL", "https://sso.example.org/")], &[]),
        "https://sso.example.org"
    );
}

#[test]
fn unknown_config_keys_are_rejected_with_the_line() {
    let site = Site::sqlite();
    let config = site.dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:1\"\npublic_ur = \"https://x.org\"\n",
    )
    .unwrap();
    let out = site.run(&["--config", config.to_str().unwrap(), "serve"]);
    assert_one_line_error(&out, "line 2: unknown field `public_ur`");
    assert!(!Path::new(&site.dir.path().join("data")).exists());
}

/// With only 256 file descriptors, 300 clients that connect and say nothing must neither
/// starve the health check nor fill the log (the probe saw /healthz time out and a flood of
/// "Too many open files"): connections are capped below the limit and idle ones are cut off
/// after the header deadline (10 s by default).
#[tokio::test]
async fn idle_clients_cannot_exhaust_descriptors() {
    let site = Site::sqlite();
    let server = Server::start_under(&site, "admin@example.org", &["prlimit", "--nofile=256:256"]);
    let mut idle = Vec::new();
    for _ in 0..300 {
        match tokio::net::TcpStream::connect(&server.addr).await {
            Ok(s) => idle.push(s),
            Err(e) => panic!("connect: {e}"),
        }
    }
    let started = Instant::now();
    let health = tokio::time::timeout(
        Duration::from_secs(25),
        reqwest::get(server.url("/healthz")),
    )
    .await
    .expect("/healthz answered while 300 idle connections were open")
    .unwrap();
    assert_eq!(health.status(), 200);
    eprintln!("healthz answered after {:?}", started.elapsed());
    drop(idle);
    let logs = server.stop();
    let floods = logs
        .iter()
        .filter(|l| l.contains("Too many open files"))
        .count();
    assert!(floods <= 3, "{floods} lines about descriptors");
}

/// Secrets are sealed with the platform key (item 8 of the probe): the key file and the
/// database are readable by their owner only, the setup password, signing keys and queued
/// invitation links are not in the clear in the database, and a key rotation reseals them
/// while `admin-credentials` keeps working.
#[tokio::test]
async fn secrets_are_sealed_at_rest_and_the_key_rotates() {
    use std::os::unix::fs::PermissionsExt;
    let site = Site::sqlite();
    let server = Server::start(&site, "admin@example.org");
    site.json(&["user", "add", "alice@example.org", "--name", "Alice"]);
    server.stop();
    let key_file = site.dir.path().join("stackspin-data/secret.key");
    let db = site.dir.path().join("data/stackspin.sqlite");
    for f in [&key_file, &db] {
        let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} is {mode:o}", f.display());
    }
    let creds = site.json(&["admin-credentials"]);
    let password = creds["password"].as_str().unwrap().to_owned();
    let raw = |path: &std::path::Path| std::fs::read(path).unwrap_or_default();
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    let everything = [raw(&db), raw(std::path::Path::new(&wal))].concat();
    assert!(
        !everything
            .windows(password.len())
            .any(|w| w == password.as_bytes()),
        "the setup password is in the database file in the clear"
    );
    assert!(
        !String::from_utf8_lossy(&everything).contains("/reset?token="),
        "a queued invitation link is in the clear"
    );
    let sealed = |query: &str| -> String {
        let out = Command::new("python3")
            .args([
                "-c",
                "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute(sys.argv[2]).fetchone()[0])",
                db.to_str().unwrap(),
                query,
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr_line(&out));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    assert!(sealed("SELECT password FROM setup_credentials").starts_with("$sealed$"));
    assert!(sealed("SELECT body FROM mail_outbox").starts_with("$sealed$"));
    assert_eq!(
        sealed("SELECT substr(private_key, 1, 4) FROM signing_keys LIMIT 1"),
        "b'SSv1'"
    );

    let before = std::fs::read_to_string(&key_file).unwrap();
    let rotated = site.json(&["secret-key", "rotate"]);
    assert!(rotated["resealed"].as_u64().unwrap() >= 4, "{rotated}");
    let after = std::fs::read_to_string(&key_file).unwrap();
    assert_ne!(before, after);
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        site.json(&["admin-credentials"])["password"],
        password.as_str()
    );
    // The server starts on the rotated key and signs with its (resealed) keys.
    let server = Server::start(&site, "admin@example.org");
    let jwks = reqwest::get(server.url("/jwks.json")).await.unwrap();
    assert_eq!(jwks.status(), 200);
    server.stop();

    // With another key (the file lost), the secrets stay shut, with a clear error.
    std::fs::remove_file(&key_file).unwrap();
    let out = site.run(&["admin-credentials"]);
    assert_one_line_error(&out, "sealed with a platform key this server does not have");
}

/// `serve --kubeconfig` runs the operator: an app installed with `stackspin app install`
/// reaches ready on the test bed (its chart from a repository on loopback, the stand-in for the
/// real chart repositories), gets its single sign-on client (so it is in the launcher) and its
/// HelmRelease; uninstalling with --purge removes all of it. The catalog commands refuse what
/// the catalog does not allow, in one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_a_cluster_installs_and_uninstalls_an_app() {
    use stackspin_testbed::platform::{hello_catalog_files, install_platform_crds, kubectl};
    use stackspin_testbed::{ChartRepo, ChartVersion, TestBed};

    let bed = TestBed::get().unwrap();
    install_platform_crds(bed).unwrap();
    let repo = ChartRepo::serve(&[ChartVersion::new("hello", "0.1.0")])
        .await
        .unwrap();
    let site = Site::sqlite();
    let catalog = site.dir.path().join("catalog");
    for (path, text) in hello_catalog_files(&repo.url) {
        let file = catalog.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
    let config = site.dir.path().join("cluster.toml");
    std::fs::write(
        &config,
        "domain = \"example.test\"\nip_address = \"192.0.2.10\"\n\
         admin_email = \"admin@example.test\"\n",
    )
    .unwrap();
    let catalog = catalog.to_str().unwrap();
    let kubeconfig = bed.kubeconfig().to_str().unwrap();

    // A cluster without its configuration is refused before anything starts.
    let out = site.run(&[
        "serve",
        "--admin-email",
        "a@example.test",
        "--kubeconfig",
        kubeconfig,
    ]);
    assert_one_line_error(&out, "--cluster-config");

    let server = Server::start_with(
        &site,
        "admin@example.test",
        &[],
        &[
            "--kubeconfig",
            kubeconfig,
            "--cluster-config",
            config.to_str().unwrap(),
            "--catalog",
            catalog,
            "--operator-interval",
            "1",
        ],
    );
    let out = site.run(&["app", "install", "nextcloud", "--catalog", catalog]);
    assert_one_line_error(&out, "not in the catalog");
    let out = site.run(&[
        "app",
        "install",
        "hello",
        "--subdomain",
        "a.b",
        "--catalog",
        catalog,
    ]);
    assert_one_line_error(&out, "DNS label");
    let listed = site.json(&["app", "catalog", "--catalog", catalog]);
    assert_eq!(listed[0]["name"], "hello");
    assert!(listed[0]["installed"].is_null());

    site.json(&["app", "install", "hello", "--catalog", catalog]);
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        let status = site.json(&["app", "status", "hello"]);
        if status["state"] == "ready" {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "hello did not become ready: {status}; serve said {:?}",
            server
                .logs
                .lock()
                .unwrap()
                .iter()
                .rev()
                .take(10)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(status["running_version"], "0.1.0");
    // Its single sign-on client, hence its tile in the launcher.
    let apps = site.json(&["app", "list"]);
    assert!(
        apps.as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "hello" && a["url"] == "https://hello.example.test/"),
        "{apps}"
    );
    let release = kubectl(
        bed,
        &[
            "get",
            "helmrelease",
            "hello",
            "-n",
            "stackspin-apps",
            "-o",
            "name",
        ],
    )
    .unwrap();
    assert!(release.contains("hello"), "{release}");

    site.json(&["app", "uninstall", "hello", "--purge"]);
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let out = site.run(&["app", "status", "hello"]);
        if !out.status.success() {
            assert_one_line_error(&out, "not installed");
            break;
        }
        assert!(Instant::now() < deadline, "hello was not uninstalled");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        !site
            .json(&["app", "list"])
            .to_string()
            .contains("\"hello\""),
        "the client went with the app"
    );
    let logs = server.stop();
    assert!(
        logs.iter().any(|l| l.contains("operator: leading")),
        "{logs:?}"
    );
}
