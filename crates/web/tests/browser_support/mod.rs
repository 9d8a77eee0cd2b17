//! The real browser the browser tests drive: Debian's chromium through chromedriver
//! (WebDriver), with helpers that wait for the page they read.
#![allow(dead_code)]

use std::{path::PathBuf, process::Child, time::Duration};

use fantoccini::{Client, ClientBuilder, Locator};

use crate::support::{Provider, free_port};

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> Browser {
        let port = free_port();
        let driver = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start chromedriver (run scripts/test): {e}"));
        let profile = tempfile::tempdir().unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--no-first-run", "--disable-sync", "--window-size=1000,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }),
        );
        let mut last = None;
        for _ in 0..100 {
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(client) => {
                    return Browser {
                        client,
                        driver,
                        _profile: profile,
                    };
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("cannot connect to chromedriver: {last:?}");
    }

    pub async fn fill(&self, id: &str, text: &str) {
        let el = self
            .client
            .wait()
            .for_element(Locator::Id(id))
            .await
            .unwrap();
        el.clear().await.unwrap();
        el.send_keys(text).await.unwrap();
    }

    pub async fn click(&self, id: &str) {
        self.client
            .wait()
            .for_element(Locator::Id(id))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// The text of an element. A form submission can replace the page between finding the
    /// element and reading it, so a stale element is looked up again.
    pub async fn text(&self, id: &str) -> String {
        for _ in 0..50 {
            let el = self
                .client
                .wait()
                .for_element(Locator::Id(id))
                .await
                .unwrap();
            match el.text().await {
                Ok(t) => return t,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        panic!("element #{id} kept going stale");
    }

    /// Waits until the page source contains `needle`.
    pub async fn wait_for_text(&self, needle: &str) -> String {
        for _ in 0..100 {
            let src = self.client.source().await.unwrap();
            if src.contains(needle) {
                return src;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "page never showed {needle:?}: {}",
            self.client.source().await.unwrap()
        );
    }

    /// Waits until the address shows `needle`: a GET form's submission has replaced the page,
    /// so what is read next is the new page and not the one the click left.
    pub async fn wait_for_url(&self, needle: &str) {
        for _ in 0..100 {
            if self
                .client
                .current_url()
                .await
                .unwrap()
                .as_str()
                .contains(needle)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the address never showed {needle:?}: {}",
            self.client.current_url().await.unwrap()
        );
    }

    pub async fn screenshot(&self, name: &str) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Clicks the first element matching a CSS selector.
    pub async fn click_css(&self, css: &str) {
        self.client
            .wait()
            .for_element(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// Picks an option in a `<select>` by its value.
    pub async fn select(&self, id: &str, value: &str) {
        self.click_css(&format!("#{id} option[value='{value}']"))
            .await;
    }

    /// Checks the page the way a screen-reader or keyboard user meets it: every visible form
    /// control has a label, the page has one h1 and a language, and the page never scrolls
    /// sideways (wide tables scroll inside their own box). Returns the problems found.
    pub async fn accessibility_problems(&self) -> Vec<String> {
        let v = self
            .client
            .execute(
                r#"
                const problems = [];
                for (const el of document.querySelectorAll('input, select, textarea')) {
                  if (el.type === 'hidden') continue;
                  const labelled = (el.labels && el.labels.length > 0)
                    || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
                  if (!labelled) problems.push('no label: ' + el.outerHTML.slice(0, 80));
                }
                if (document.querySelectorAll('h1').length !== 1) problems.push('not one h1');
                if (!document.documentElement.lang) problems.push('no lang');
                const w = document.documentElement;
                if (w.scrollWidth > w.clientWidth + 1)
                  problems.push('page scrolls sideways: ' + w.scrollWidth + ' > ' + w.clientWidth);
                return problems;
                "#,
                vec![],
            )
            .await
            .unwrap();
        serde_json::from_value(v).unwrap()
    }

    /// Runs axe-core (npm, installed by scripts/install-test-deps) in the page against WCAG
    /// 2.0, 2.1 and 2.2 A and AA, returning each violation with the elements it found.
    pub async fn axe_violations(&self) -> Vec<String> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/peers/node_modules/axe-core/axe.min.js");
        let source = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "axe-core missing at {} (run scripts/test): {e}",
                path.display()
            )
        });
        self.client.execute(&source, vec![]).await.unwrap();
        let v = self
            .client
            .execute_async(
                r#"
                const done = arguments[arguments.length - 1];
                axe.run(document, { runOnly: { type: 'tag',
                    values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'] } })
                  .then(r => done(r.violations.map(v => v.id + ': ' +
                      v.nodes.map(n => n.target.join(' ') + ' (' +
                          (n.failureSummary || '').replace(/\s+/g, ' ').slice(0, 240) + ')')
                        .join(', '))))
                  .catch(e => done(['axe failed: ' + e]));
                "#,
                vec![],
            )
            .await
            .unwrap();
        serde_json::from_value(v).unwrap()
    }

    /// Sets the window's size (CSS pixels of the viewport are close to it in headless mode).
    pub async fn resize(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.unwrap();
    }

    /// Whether the page is wider than the viewport: `None` if it fits, else by how much and
    /// the outermost elements that stick out, to say what to fix.
    pub async fn overflow(&self) -> Option<String> {
        let v = self
            .client
            .execute(
                r#"
                const w = document.documentElement;
                const over = w.scrollWidth - w.clientWidth;
                if (over <= 0) return null;
                const out = [];
                for (const el of document.body.querySelectorAll('*')) {
                  if (el.getBoundingClientRect().right > w.clientWidth + 1
                      && !(el.parentElement && el.parentElement.getBoundingClientRect().right > w.clientWidth + 1)) {
                    out.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
                      + (el.className ? '.' + el.className : '') + ' in ' + el.parentElement.tagName
                      + '.' + el.parentElement.className + '/' + getComputedStyle(el.parentElement).overflowX
                      + '/' + el.parentElement.getBoundingClientRect().width);
                  }
                }
                return over + 'px wider than the screen: ' + out.slice(0, 5).join(', ');
                "#,
                vec![],
            )
            .await
            .unwrap();
        v.as_str().map(str::to_owned)
    }

    pub async fn close(self) {
        let _ = self.client.clone().close().await;
        // Drop stops the driver.
    }

    pub async fn log_in(&self, p: &Provider, email: &str, password: &str) {
        self.client.goto(&p.url("/login")).await.unwrap();
        self.fill("email", email).await;
        self.fill("password", password).await;
        self.click("login-submit").await;
    }
}

impl Drop for Browser {
    /// Also runs when a test fails midway, so no chromedriver outlives its test.
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
