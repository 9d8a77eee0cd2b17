//! How the install's steps are shown: a spinner with the step's name and elapsed time on a
//! terminal, plain lines otherwise, and every step in the cluster folder's install.log.

use anyhow::{Result, bail};
use stackspin_provision::folder::ClusterFolder;

/// Shows a long step: a spinner with its name and elapsed time on a terminal, plain lines
/// otherwise (and nothing on stdout, which `--json` keeps for its document). Every step is
/// also written to the cluster folder's install.log.
pub(super) struct Steps<'a> {
    folder: &'a ClusterFolder,
    json: bool,
    spinner: Option<indicatif::ProgressBar>,
    started: std::time::Instant,
    name: String,
    pub(super) done: Vec<StepReport>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub(super) struct StepReport {
    step: String,
    result: String,
    seconds: f64,
}

impl<'a> Steps<'a> {
    pub(super) fn new(folder: &'a ClusterFolder, json: bool) -> Self {
        Steps {
            folder,
            json,
            spinner: None,
            started: std::time::Instant::now(),
            name: String::new(),
            done: Vec::new(),
        }
    }

    pub(super) fn start(&mut self, name: &str) {
        self.name = name.to_string();
        self.started = std::time::Instant::now();
        self.folder.log(&format!("start: {name}"));
        if self.json {
            return;
        }
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {prefix} [{elapsed}] {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar.set_prefix(name.to_string());
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            self.spinner = Some(bar);
        } else {
            eprintln!("- {name}");
        }
    }

    pub(super) fn note(&mut self, line: &str) {
        self.folder.log(&format!("  {}: {line}", self.name));
        if let Some(bar) = &self.spinner {
            bar.set_message(line.to_string());
        }
    }

    pub(super) fn line(&mut self, line: &str) {
        self.folder.log(&format!("  {}: {line}", self.name));
        if self.json {
            return;
        }
        match &self.spinner {
            Some(bar) => bar.println(format!("  {line}")),
            None => eprintln!("  {line}"),
        }
    }

    pub(super) fn finish(&mut self, result: &str) {
        let secs = self.started.elapsed().as_secs_f64();
        self.folder
            .log(&format!("done: {} ({result}, {secs:.1} s)", self.name));
        if let Some(bar) = self.spinner.take() {
            bar.finish_and_clear();
        }
        if !self.json {
            eprintln!("✓ {}: {result} ({secs:.1} s)", self.name);
        }
        self.done.push(StepReport {
            step: self.name.clone(),
            result: result.to_string(),
            seconds: (secs * 10.0).round() / 10.0,
        });
    }

    /// Shows each check as a pass/FAIL line; any failure fails the step, naming them all.
    pub(super) fn checks(
        &mut self,
        what: &str,
        checks: &[stackspin_provision::install::Check],
    ) -> Result<()> {
        for c in checks {
            self.line(&format!(
                "{} {}: {}",
                if c.ok { "pass" } else { "FAIL" },
                c.what,
                c.found
            ));
        }
        let failed: Vec<&str> = checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.what.as_str())
            .collect();
        if !failed.is_empty() {
            self.fail(what);
            bail!("{what} failed: {}", failed.join("; "));
        }
        self.finish("passed");
        Ok(())
    }

    pub(super) fn fail(&mut self, why: &str) {
        self.folder.log(&format!("failed: {} ({why})", self.name));
        if let Some(bar) = self.spinner.take() {
            bar.finish_and_clear();
        }
        if !self.json {
            eprintln!("✗ {}", self.name);
        }
    }
}
