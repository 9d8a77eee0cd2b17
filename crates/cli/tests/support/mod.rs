//! What the binary's end-to-end tests share: a place to run commands against one database,
//! and a running `stackspin serve` whose log lines are collected.
#![allow(dead_code, clippy::unwrap_used)]

use std::{
    io::{BufRead, BufReader, Write},
    process::{Child, Command, Output, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_stackspin");

/// A place to run commands: a temporary working folder and the database to use.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub database_url: String,
}

impl Site {
    pub fn sqlite() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let database_url = format!("sqlite://{}/data/stackspin.sqlite", dir.path().display());
        Site { dir, database_url }
    }

    pub async fn postgres() -> Site {
        let url = stackspin_storage::testing::fresh_postgres_url().await;
        let stackspin_domain::settings::DatabaseUrl::Postgres(u) = url else {
            unreachable!()
        };
        Site {
            dir: tempfile::tempdir().unwrap(),
            database_url: u.to_string(),
        }
    }

    /// The binary with a clean environment: no STACKSPIN_* from the developer's shell.
    pub fn cmd(&self, args: &[&str]) -> Command {
        self.cmd_under(&[], args)
    }

    /// As [`Site::cmd`], run by `wrapper` (`prlimit ...`), which is given the binary first.
    pub fn cmd_under(&self, wrapper: &[&str], args: &[&str]) -> Command {
        let mut c = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        for (k, _) in std::env::vars() {
            if k.starts_with("STACKSPIN_") || k == "RUST_LOG" {
                c.env_remove(k);
            }
        }
        c.current_dir(self.dir.path())
            .env("STACKSPIN_DATABASE_URL", &self.database_url)
            .args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    pub fn run_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs a command that must succeed and returns its JSON output.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.run(&all);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// A running `stackspin serve` whose JSON log lines are collected.
pub struct Server {
    pub child: Child,
    pub addr: String,
    pub logs: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn start(site: &Site, admin_email: &str) -> Server {
        Self::start_under(site, admin_email, &[])
    }

    pub fn start_under(site: &Site, admin_email: &str, wrapper: &[&str]) -> Server {
        Self::start_with(site, admin_email, wrapper, &[])
    }

    pub fn start_with(site: &Site, admin_email: &str, wrapper: &[&str], extra: &[&str]) -> Server {
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--admin-email",
            admin_email,
        ];
        args.extend_from_slice(extra);
        let mut child = site
            .cmd_under(wrapper, &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v["fields"]["message"] == "stackspin is serving"
                {
                    let _ = tx.send(v["fields"]["listen"].as_str().unwrap().to_owned());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!("serve did not start: {:?}", logs.lock().unwrap());
            }
        };
        Server { child, addr, logs }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) -> Vec<String> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert!(st.success(), "serve exited with {st}");
                break;
            }
            assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
        // Give the reader thread a moment to drain the pipe.
        std::thread::sleep(Duration::from_millis(100));
        self.logs.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

pub fn stderr_line(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts a command fails with exit code 1 and exactly one line on stderr naming `expected`.
pub fn assert_one_line_error(out: &Output, expected: &str) {
    let err = stderr_line(out);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.lines().count(), 1, "not one line: {err:?}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        err.contains(expected),
        "{err:?} should mention {expected:?}"
    );
}
