//! Side-by-side benchmark of Stackspin's OpenID Connect provider and oidc-provider (the
//! OpenID Certified reference), in one run on one machine:
//!
//! 1. Full code-flow round trips with an existing browser session: authorize (PKCE) → token
//!    → userinfo, from `--concurrency` workers for `--seconds`; round trips per second and
//!    p50/p99 latency of a round trip.
//! 2. Resident memory of both server processes after the load.
//! 3. Password logins per second on Stackspin against the argon2id verify rate measured in
//!    this process with the same parameters: logins are bounded by hashing by design.
//!
//! Usage: stackspin-bench STACKSPIN_BIN PEERS_DIR [--seconds N] [--concurrency N]
//!        stackspin-bench users STACKSPIN_BIN [--users N]   (the Dashboard with many users)
//!        stackspin-bench forward-auth STACKSPIN_BIN [--seconds N] [--concurrency N]
//!          (`/auth/forward` with a tool's session, beside a static document from the same
//!          process as the baseline)

use std::{
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use base64::Engine;
use serde_json::Value;
use sha2::Digest;

const REDIRECT: &str = "http://127.0.0.1:9/cb";
const PASSWORD: &str = "benchmark password 1234";

/// What a client needs to talk to a provider. Cheap to clone into each worker.
#[derive(Clone)]
struct Target {
    issuer: String,
    client_id: String,
    secret: String,
}

/// A provider process under test.
struct Server {
    name: &'static str,
    child: Child,
    target: Target,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_ready(url: &str) -> Result<()> {
    for _ in 0..200 {
        if let Ok(r) = reqwest::get(url).await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{url} did not come up")
}

/// Our server from the release binary, with a user and a registered app.
/// Accounts the login storm signs in to, round robin.
const LOGIN_USERS: usize = 32;

async fn start_stackspin(bin: &str, data: &std::path::Path) -> Result<Server> {
    let port = free_port()?;
    let db = format!("sqlite://{}/stackspin.sqlite", data.display());
    let child = Command::new(bin)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            &db,
            "--data-dir",
            &data.display().to_string(),
        ])
        .args(["--admin-email", "admin@example.org", "--log-format", "json"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start stackspin")?;
    let issuer = format!("http://127.0.0.1:{port}");
    let server = Server {
        name: "stackspin",
        child,
        target: Target {
            issuer: issuer.clone(),
            client_id: String::new(),
            secret: String::new(),
        },
    };
    wait_ready(&format!("{issuer}/readyz")).await?;
    // Separate people for the login storm, as in an office: one account signing in from
    // many browsers at once would (rightly) be throttled.
    for i in 0..LOGIN_USERS {
        let email = if i == 0 {
            "bench@example.org".to_owned()
        } else {
            format!("bench{i}@example.org")
        };
        let mut add = Command::new(bin)
            .args([
                "--database-url",
                &db,
                "--data-dir",
                &data.display().to_string(),
                "user",
                "add",
                &email,
                "--name",
                "Bench",
                "--password-stdin",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()?;
        use std::io::Write;
        add.stdin
            .take()
            .context("stdin")?
            .write_all(PASSWORD.as_bytes())?;
        if !add.wait()?.success() {
            bail!("user add failed");
        }
    }
    let out = Command::new(bin)
        .args([
            "--database-url",
            &db,
            "--data-dir",
            &data.display().to_string(),
            "app",
            "register",
            "bench",
            "--url",
            "http://127.0.0.1:9",
        ])
        .args(["--redirect-uri", REDIRECT, "--json"])
        .output()?;
    let reg: Value = serde_json::from_slice(&out.stdout).context("app register output")?;
    let mut server = server;
    server.target.client_id = reg["client_id"].as_str().context("client_id")?.to_owned();
    server.target.secret = reg["client_secret"]
        .as_str()
        .context("client_secret")?
        .to_owned();
    Ok(server)
}

async fn start_reference(peers: &str) -> Result<Server> {
    let port = free_port()?;
    let child = Command::new("node")
        .current_dir(peers)
        .args([
            "oidc-provider-bench.mjs",
            &port.to_string(),
            "bench-client",
            "bench-secret-0123456789",
            REDIRECT,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start oidc-provider (npm ci in tests/peers)")?;
    let issuer = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{issuer}/.well-known/openid-configuration")).await?;
    Ok(Server {
        name: "oidc-provider",
        child,
        target: Target {
            issuer,
            client_id: "bench-client".into(),
            secret: "bench-secret-0123456789".into(),
        },
    })
}

struct Endpoints {
    authorize: String,
    token: String,
    userinfo: String,
}

async fn endpoints(issuer: &str) -> Result<Endpoints> {
    let m: Value = reqwest::get(format!("{issuer}/.well-known/openid-configuration"))
        .await?
        .json()
        .await?;
    let s = |k: &str| m[k].as_str().map(str::to_owned).context(format!("no {k}"));
    Ok(Endpoints {
        authorize: s("authorization_endpoint")?,
        token: s("token_endpoint")?,
        userinfo: s("userinfo_endpoint")?,
    })
}

fn browser() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(64)
        .build()?)
}

fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

/// Follows redirects from `url` until one leaves for the app's redirect URI; returns it.
/// Logs in on Stackspin's login page when it appears.
async fn follow(b: &reqwest::Client, s: &Target, url: &str) -> Result<String> {
    let mut url = url.to_owned();
    for _ in 0..8 {
        let r = b.get(&url).send().await?;
        if r.status().is_redirection() {
            let loc = r
                .headers()
                .get("location")
                .context("redirect without location")?
                .to_str()?
                .to_owned();
            if loc.starts_with(REDIRECT) {
                return Ok(loc);
            }
            url = if loc.starts_with('/') {
                format!("{}{loc}", s.issuer)
            } else {
                loc
            };
            continue;
        }
        let page = r.text().await?;
        let csrf = hidden(&page, "csrf").context("expected the login page")?;
        let ret = hidden(&page, "return_to")
            .unwrap_or_default()
            .replace("&#38;", "&");
        let r = b
            .post(format!("{}/login", s.issuer))
            .form(&[
                ("email", "bench@example.org"),
                ("password", PASSWORD),
                ("csrf", &csrf),
                ("return_to", &ret),
            ])
            .send()
            .await?;
        let loc = r
            .headers()
            .get("location")
            .context("login failed")?
            .to_str()?
            .to_owned();
        url = format!("{}{loc}", s.issuer);
    }
    bail!("no redirect to the app from {url}")
}

fn pkce() -> (String, String) {
    let verifier = stackspin_domain::secret::random_token(32);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// One authorize → token → userinfo round trip with the session in `b`.
async fn round_trip(b: &reqwest::Client, s: &Target, e: &Endpoints) -> Result<()> {
    let (verifier, challenge) = pkce();
    let mut auth = url::Url::parse(&e.authorize)?;
    auth.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &s.client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid email profile")
        .append_pair("state", "s")
        .append_pair("nonce", "n")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let cb = follow(b, s, auth.as_str()).await?;
    let code = url::Url::parse(&cb)?
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .context(format!("no code in {cb}"))?;
    let tokens: Value = b
        .post(&e.token)
        .basic_auth(&s.client_id, Some(&s.secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ])
        .send()
        .await?
        .json()
        .await?;
    let at = tokens["access_token"]
        .as_str()
        .context(format!("no access token: {tokens}"))?;
    let r = b.get(&e.userinfo).bearer_auth(at).send().await?;
    if !r.status().is_success() {
        bail!("userinfo {}", r.status());
    }
    Ok(())
}

struct Load {
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: usize,
}

async fn load<F, Fut>(seconds: u64, concurrency: usize, job: F) -> Load
where
    F: Fn() -> Fut + Send + Sync + 'static + Clone,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let stop = stop.clone();
            let job = job.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut errors = 0;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match job().await {
                        Ok(()) => lat.push(t.elapsed().as_secs_f64() * 1000.0),
                        Err(e) => {
                            if errors == 0 {
                                eprintln!("error: {e:#}");
                            }
                            errors += 1;
                        }
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((lat, e)) = t.await {
            all.extend(lat);
            errors += e;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    Load {
        per_sec: all.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        errors,
    }
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let get = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (get("VmRSS:"), get("VmHWM:"))
}

/// argon2id verifications per second with the production parameters, one thread per core,
/// in this process: the ceiling for password logins on this machine.
fn argon2_verify_rate(seconds: u64) -> Result<f64> {
    let params = stackspin_domain::password::HashParams::default();
    let hash = params.hash(&stackspin_domain::password::Password::new(PASSWORD)?)?;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let handles: Vec<_> = (0..cores)
        .map(|_| {
            let hash = hash.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    if params.verify(PASSWORD, &hash).matched() {
                        n += 1;
                    }
                }
                n
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("users") {
        return users_bench(&args).await;
    }
    if args.get(1).map(String::as_str) == Some("forward-auth") {
        return forward_auth_bench(&args).await;
    }
    let (Some(bin), Some(peers)) = (args.get(1), args.get(2)) else {
        bail!("usage: stackspin-bench STACKSPIN_BIN PEERS_DIR [--seconds N] [--concurrency N]");
    };
    let flag = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let seconds = flag("--seconds", 10);
    let concurrency = flag("--concurrency", 16) as usize;
    let data = std::env::temp_dir().join(format!("stackspin-bench-{}", std::process::id()));
    std::fs::create_dir_all(&data)?;

    let ours = start_stackspin(bin, &data).await?;
    let reference = start_reference(peers).await?;
    println!(
        "code-flow round trips (authorize with session → token → userinfo), {concurrency} workers, {seconds} s each\n"
    );
    println!(
        "| provider | round trips/s | p50 ms | p99 ms | errors | RSS after MiB | peak RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut rates = Vec::new();
    for s in [&ours, &reference] {
        let e = Arc::new(endpoints(&s.target.issuer).await?);
        let b = browser()?;
        // Sign in once: every round trip after this reuses the session.
        round_trip(&b, &s.target, &e).await?;
        let target = Arc::new(s.target.clone());
        let job = move || {
            let (b, e, target) = (b.clone(), e.clone(), target.clone());
            async move { round_trip(&b, &target, &e).await }
        };
        let _ = load(2, concurrency, job.clone()).await; // warm-up
        let r = load(seconds, concurrency, job).await;
        let (rss, hwm) = rss_kib(s.child.id());
        println!(
            "| {} | {:.0} | {:.1} | {:.1} | {} | {:.1} | {:.1} |",
            s.name,
            r.per_sec,
            r.p50_ms,
            r.p99_ms,
            r.errors,
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0
        );
        rates.push(r.per_sec);
    }
    if let [a, b] = rates[..] {
        println!("\nratio stackspin / oidc-provider: {:.2}×", a / b);
    }

    // Password logins on Stackspin, next to the hashing ceiling, with RSS sampled during
    // the storm and after it (argon2 takes 19 MiB per hash).
    let login_concurrency = flag("--login-concurrency", 32) as usize;
    let issuer = Arc::new(ours.target.issuer.clone());
    let next_user = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (idle_rss, _) = rss_kib(ours.child.id());
    let pid = ours.child.id();
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        tokio::spawn(async move {
            let mut max = 0;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                max = max.max(rss_kib(pid).0);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            max
        })
    };
    let logins = load(seconds, login_concurrency, move || {
        let issuer = issuer.clone();
        let i = next_user.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % LOGIN_USERS;
        let email = if i == 0 {
            "bench@example.org".to_owned()
        } else {
            format!("bench{i}@example.org")
        };
        async move {
            let b = browser()?;
            let page = b
                .get(format!("{issuer}/login"))
                .send()
                .await?
                .text()
                .await?;
            let csrf = hidden(&page, "csrf").context("no csrf")?;
            let r = b
                .post(format!("{issuer}/login"))
                .form(&[
                    ("email", email.as_str()),
                    ("password", PASSWORD),
                    ("csrf", csrf.as_str()),
                    ("return_to", "/"),
                ])
                .send()
                .await?;
            if r.status().as_u16() != 303 {
                bail!("login answered {}", r.status());
            }
            Ok(())
        }
    })
    .await;
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let storm_rss = sampler.await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (after_rss, _) = rss_kib(ours.child.id());
    // Idle blocking threads end after 10 s, and an allocator may hold freed memory until then.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let (settled_rss, _) = rss_kib(ours.child.id());
    let verify = tokio::task::spawn_blocking(move || argon2_verify_rate(seconds.min(5))).await??;
    println!(
        "\npassword logins (GET /login + POST /login), {login_concurrency} workers, {seconds} s\n"
    );
    println!("| measure | per second | p50 ms | p99 ms | errors |");
    println!("|---|---|---|---|---|");
    println!(
        "| stackspin password logins | {:.1} | {:.1} | {:.1} | {} |",
        logins.per_sec, logins.p50_ms, logins.p99_ms, logins.errors
    );
    println!("| argon2id verifies (19 MiB, t=2, p=1), all cores, in-process | {verify:.1} | | | |");
    println!("\nlogins / verify ceiling: {:.2}", logins.per_sec / verify);
    println!(
        "stackspin RSS: before the storm {:.1} MiB, highest during it {:.1} MiB, 2 s after {:.1} MiB, 13 s after {:.1} MiB",
        idle_rss as f64 / 1024.0,
        storm_rss as f64 / 1024.0,
        after_rss as f64 / 1024.0,
        settled_rss as f64 / 1024.0
    );
    drop(ours);
    drop(reference);
    let _ = std::fs::remove_dir_all(&data);
    Ok(())
}

/// The Dashboard's users page and `GET /api/v1/users` with many users: p50/p99 request time for
/// listing, searching and paging, one request at a time, measured by the client on loopback.
async fn users_bench(args: &[String]) -> Result<()> {
    let bin = args
        .get(2)
        .context("usage: stackspin-bench users STACKSPIN_BIN [--users N]")?;
    let n: usize = args
        .iter()
        .position(|a| a == "--users")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let data = std::env::temp_dir().join(format!("stackspin-bench-users-{}", std::process::id()));
    std::fs::create_dir_all(&data)?;
    let server = start_stackspin(bin, &data).await?;
    let issuer = server.target.issuer.clone();
    let db = format!("sqlite://{}/stackspin.sqlite", data.display());
    let out = Command::new(bin)
        .args([
            "--database-url",
            &db,
            "api-token",
            "create",
            "bench",
            "--as",
            "admin@example.org",
            "--json",
        ])
        .output()?;
    let token: Value = serde_json::from_slice(&out.stdout).context("api-token output")?;
    let token = token["token"].as_str().context("token")?.to_owned();
    let creds = Command::new(bin)
        .args(["--database-url", &db, "admin-credentials", "--json"])
        .output()?;
    let creds: Value = serde_json::from_slice(&creds.stdout)?;
    let admin_password = creds["password"].as_str().context("password")?.to_owned();

    // Seed through the API, as an admin would in bulk.
    let seeded = Instant::now();
    let http = reqwest::Client::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let (http, issuer, token, next) = (http.clone(), issuer.clone(), token.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return Ok::<_, anyhow::Error>(());
                    }
                    let r = http
                        .post(format!("{issuer}/api/v1/users"))
                        .bearer_auth(&token)
                        .json(&serde_json::json!({"email": format!("person{i:05}@example.org"), "name": format!("Person {i:05} Example")}))
                        .send()
                        .await?;
                    if r.status().as_u16() != 201 {
                        bail!("seeding answered {}", r.status());
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await??;
    }
    println!(
        "seeded {n} users through POST /api/v1/users in {:.1} s\n",
        seeded.elapsed().as_secs_f64()
    );

    // An admin browser session for the HTML page.
    let b = browser()?;
    let page = b
        .get(format!("{issuer}/login"))
        .send()
        .await?
        .text()
        .await?;
    let csrf = hidden(&page, "csrf").context("csrf")?;
    b.post(format!("{issuer}/login"))
        .form(&[
            ("email", "admin@example.org"),
            ("password", admin_password.as_str()),
            ("csrf", &csrf),
            ("return_to", "/"),
        ])
        .send()
        .await?;

    let last_page = n.div_ceil(50);
    let cases = [
        ("list, first page", "q=&page=1".to_owned()),
        ("list, middle page", format!("page={}", last_page / 2)),
        ("list, last page", format!("page={last_page}")),
        ("search (1 match)", "q=person04242".to_owned()),
        ("search (1,111 matches)", "q=person0".to_owned()),
        (
            "sort by name, descending",
            "sort=name&order=desc".to_owned(),
        ),
    ];
    println!("| request | users page p50 ms | p99 ms | GET /api/v1/users p50 ms | p99 ms |");
    println!("|---|---|---|---|---|");
    for (label, query) in &cases {
        let api_query = query.replace("sort=created", "sort=created_at");
        let page = timed(200, || {
            b.get(format!("{issuer}/admin/users?{query}")).send()
        })
        .await?;
        let api = timed(200, || {
            http.get(format!("{issuer}/api/v1/users?{api_query}&per_page=50"))
                .bearer_auth(&token)
                .send()
        })
        .await?;
        println!(
            "| {label} | {:.2} | {:.2} | {:.2} | {:.2} |",
            page.0, page.1, api.0, api.1
        );
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
    Ok(())
}

/// p50 and p99 in milliseconds of `n` sequential requests (after 10 unmeasured ones).
async fn timed<F, Fut>(n: usize, request: F) -> Result<(f64, f64)>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = reqwest::Result<reqwest::Response>>,
{
    let mut times = Vec::with_capacity(n);
    for i in 0..n + 10 {
        let t = Instant::now();
        let r = request().await?;
        if !r.status().is_success() {
            bail!("answered {}", r.status());
        }
        let _ = r.bytes().await?;
        if i >= 10 {
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    Ok((pct(0.5), pct(0.99)))
}

/// Forward-auth is on every request of the tools behind it: its rate and latency with a
/// valid tool session, against a static document (`/api/v1/openapi.json`, compiled in)
/// served by the same process, in the same run.
async fn forward_auth_bench(args: &[String]) -> Result<()> {
    let Some(bin) = args.get(2) else {
        bail!("usage: stackspin-bench forward-auth STACKSPIN_BIN [--seconds N] [--concurrency N]");
    };
    let flag = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let seconds = flag("--seconds", 10);
    let concurrency = flag("--concurrency", 16) as usize;
    let data = std::env::temp_dir().join(format!("stackspin-bench-fa-{}", std::process::id()));
    std::fs::create_dir_all(&data)?;
    let server = start_stackspin(bin, &data).await?;
    let base = server.target.issuer.clone();
    // The registered app `bench` is at http://127.0.0.1:9: its host is the tool's.
    let host = "127.0.0.1:9";
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(64)
        .build()?;
    let ask = |uri: &str, cookie: Option<&str>| {
        let mut r = plain
            .get(format!("{base}/auth/forward"))
            .header("x-forwarded-host", host)
            .header("x-forwarded-proto", "http")
            .header("x-forwarded-uri", uri);
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        r
    };
    // The hand-over, once, as a signed-in browser makes it.
    let b = browser()?;
    let first = ask("/", None).send().await?;
    let to_dashboard = first
        .headers()
        .get("location")
        .context("no hand-over redirect")?
        .to_str()?
        .to_owned();
    let page = b.get(format!("{base}/login")).send().await?.text().await?;
    let csrf = hidden(&page, "csrf").context("login page")?;
    b.post(format!("{base}/login"))
        .form(&[
            ("email", "bench@example.org"),
            ("password", PASSWORD),
            ("csrf", &csrf),
            ("return_to", "/"),
        ])
        .send()
        .await?;
    let to_tool = b
        .get(&to_dashboard)
        .send()
        .await?
        .headers()
        .get("location")
        .context("no code")?
        .to_str()?
        .to_owned();
    let path = to_tool
        .strip_prefix(&format!("http://{host}"))
        .context("code for the tool's host")?
        .to_owned();
    let redeemed = ask(&path, None).send().await?;
    let cookie = redeemed
        .headers()
        .get("set-cookie")
        .context("no tool cookie")?
        .to_str()?
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned();
    if ask("/", Some(&cookie)).send().await?.status() != 200 {
        bail!("the tool's session is not accepted");
    }

    println!(
        "forward-auth with a valid tool session vs a static document, same process, {concurrency} workers, {seconds} s each\n"
    );
    println!("| request | requests/s | p50 ms | p99 ms | errors |");
    println!("|---|---|---|---|---|");
    let mut rates = Vec::new();
    for which in [
        "GET /auth/forward (tool session)",
        "GET /api/v1/openapi.json (static)",
    ] {
        let forward = which.starts_with("GET /auth");
        let (plain, base, cookie) = (plain.clone(), base.clone(), cookie.clone());
        let job = move || {
            let (plain, base, cookie) = (plain.clone(), base.clone(), cookie.clone());
            async move {
                let r = if forward {
                    plain
                        .get(format!("{base}/auth/forward"))
                        .header("x-forwarded-host", "127.0.0.1:9")
                        .header("x-forwarded-proto", "http")
                        .header("x-forwarded-uri", "/api/v1/query?query=up")
                        .header("cookie", cookie)
                        .send()
                        .await?
                } else {
                    plain
                        .get(format!("{base}/api/v1/openapi.json"))
                        .send()
                        .await?
                };
                if r.status() != 200 {
                    bail!("status {}", r.status());
                }
                r.bytes().await?;
                Ok(())
            }
        };
        let _ = load(2, concurrency, job.clone()).await;
        let r = load(seconds, concurrency, job).await;
        println!(
            "| {which} | {:.0} | {:.2} | {:.2} | {} |",
            r.per_sec, r.p50_ms, r.p99_ms, r.errors
        );
        rates.push(r.per_sec);
    }
    if let [fa, st] = rates[..] {
        println!(
            "\nforward-auth runs at {:.2}× the static document's rate",
            fa / st
        );
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
    Ok(())
}
