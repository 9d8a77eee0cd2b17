//! From what Flux reports to what the Dashboard shows. Pure, so every mapping is unit-tested
//! without a cluster; the test bed proves the conditions really look like this.

use stackspin_platform::crds::{Condition, HelmReleaseStatus, SourceStatus};
use stackspin_storage::AppState;

/// What the operator read for one release.
#[derive(Debug, Clone, Default)]
pub struct Observed<'a> {
    /// `None` while the HelmRelease does not exist yet.
    pub release: Option<&'a HelmReleaseStatus>,
    /// The HelmRelease's `metadata.generation`.
    pub generation: Option<i64>,
    /// The chart's source (HelmRepository or OCIRepository).
    pub source: Option<&'a SourceStatus>,
    /// The version the operator asks for.
    pub target: &'a str,
}

fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or_default().trim();
    // Flux's messages can quote whole manifests; the Dashboard shows a sentence.
    if line.chars().count() > 300 {
        let cut: String = line.chars().take(300).collect();
        format!("{cut}…")
    } else {
        line.to_string()
    }
}

/// The version Helm last deployed successfully, from the release history (newest first).
pub fn running_version(release: &HelmReleaseStatus) -> Option<String> {
    release
        .history
        .iter()
        .find(|s| s.status == "deployed" || s.status == "superseded")
        .map(|s| s.chart_version.clone())
}

/// The state and its reason (the controller's own words where it gave some).
pub fn release_state(o: &Observed<'_>) -> (AppState, String) {
    let source_failure = o
        .source
        .and_then(|s| find(&s.conditions, "Ready"))
        .filter(|c| c.status == "False")
        .map(|c| format!("chart source: {}", first_line(&c.message)));
    let Some(release) = o.release else {
        return match source_failure {
            Some(reason) => (AppState::Failed, reason),
            None => (AppState::Installing, "waiting for Flux".into()),
        };
    };
    let ready = find(&release.conditions, "Ready");
    let remediated = find(&release.conditions, "Remediated");
    let stalled = find(&release.conditions, "Stalled").filter(|c| c.status == "True");
    let seen = match (release.observed_generation, o.generation) {
        (Some(seen), Some(current)) => seen >= current,
        _ => false,
    };

    if let Some(r) = remediated.filter(|c| c.status == "True" && c.reason == "RollbackSucceeded") {
        // Flux rolled a failed upgrade back: say which version failed and why.
        let why = ready
            .filter(|c| c.status == "False")
            .map(|c| first_line(&c.message))
            .unwrap_or_else(|| first_line(&r.message));
        if ready.is_some_and(|c| c.status == "True") && seen {
            // A later upgrade succeeded; the rollback is history.
        } else {
            return (AppState::RolledBack, why);
        }
    }
    match ready {
        Some(c) if c.status == "True" && seen => {
            let running = running_version(release);
            if running.as_deref() == Some(o.target) {
                (AppState::Ready, String::new())
            } else {
                (AppState::Installing, format!("moving to {}", o.target))
            }
        }
        Some(c) if c.status == "False" => {
            if let Some(reason) = source_failure {
                return (AppState::Failed, reason);
            }
            let failed = stalled.is_some()
                || matches!(
                    c.reason.as_str(),
                    "InstallFailed"
                        | "UpgradeFailed"
                        | "ArtifactFailed"
                        | "InitFailed"
                        | "RetriesExceeded"
                        | "TestFailed"
                        | "UninstallFailed"
                );
            if failed {
                (AppState::Failed, first_line(&c.message))
            } else {
                (AppState::Installing, first_line(&c.message))
            }
        }
        Some(c) => match source_failure {
            Some(reason) => (AppState::Failed, reason),
            None => (AppState::Installing, first_line(&c.message)),
        },
        None => match source_failure {
            Some(reason) => (AppState::Failed, reason),
            None => (AppState::Installing, "waiting for Flux".into()),
        },
    }
}

/// The newest version a source resolved for the catalog's range: a HelmChart's artifact
/// revision is the chart version; an OCIRepository's is `<tag>@<digest>`.
pub fn resolved_version(source: &SourceStatus, prefix: &str) -> Option<semver::Version> {
    let ready = find(&source.conditions, "Ready").is_some_and(|c| c.status == "True");
    if !ready {
        return None;
    }
    let revision = &source.artifact.as_ref()?.revision;
    let tag = revision.split('@').next().unwrap_or_default();
    let tag = tag.strip_prefix(prefix).unwrap_or(tag);
    semver::Version::parse(tag).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use stackspin_platform::crds::{Artifact, Snapshot};

    fn cond(t: &str, status: &str, reason: &str, message: &str) -> Condition {
        Condition {
            type_: t.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: None,
            observed_generation: None,
        }
    }

    fn snap(v: &str, status: &str) -> Snapshot {
        Snapshot {
            chart_name: "hello".into(),
            chart_version: v.into(),
            status: status.into(),
            version: 1,
        }
    }

    fn release(conditions: Vec<Condition>, history: Vec<Snapshot>) -> HelmReleaseStatus {
        HelmReleaseStatus {
            conditions,
            observed_generation: Some(2),
            history,
            ..HelmReleaseStatus::default()
        }
    }

    fn observe<'a>(r: Option<&'a HelmReleaseStatus>, s: Option<&'a SourceStatus>) -> Observed<'a> {
        Observed {
            release: r,
            generation: Some(2),
            source: s,
            target: "0.2.0",
        }
    }

    #[test]
    fn ready_only_when_flux_saw_the_current_spec_and_runs_the_target() {
        let r = release(
            vec![cond("Ready", "True", "UpgradeSucceeded", "ok")],
            vec![snap("0.2.0", "deployed")],
        );
        assert_eq!(release_state(&observe(Some(&r), None)).0, AppState::Ready);
        let old = release(
            vec![cond("Ready", "True", "InstallSucceeded", "ok")],
            vec![snap("0.1.0", "deployed")],
        );
        assert_eq!(
            release_state(&observe(Some(&old), None)).0,
            AppState::Installing
        );
        let mut stale = r.clone();
        stale.observed_generation = Some(1);
        assert_eq!(
            release_state(&observe(Some(&stale), None)).0,
            AppState::Installing
        );
    }

    #[test]
    fn a_source_error_is_the_reason() {
        let s = SourceStatus {
            conditions: vec![cond(
                "Ready",
                "False",
                "IndexationFailed",
                "failed to fetch https://charts.example/index.yaml: no such host\nmore",
            )],
            ..SourceStatus::default()
        };
        let (state, reason) = release_state(&observe(None, Some(&s)));
        assert_eq!(state, AppState::Failed);
        assert_eq!(
            reason,
            "chart source: failed to fetch https://charts.example/index.yaml: no such host"
        );
        let waiting = release(vec![cond("Ready", "False", "ArtifactFailed", "x")], vec![]);
        assert!(
            release_state(&observe(Some(&waiting), Some(&s)))
                .1
                .starts_with("chart source")
        );
    }

    #[test]
    fn failures_and_rollbacks_are_told_apart() {
        let failed = release(
            vec![
                cond("Ready", "False", "InstallFailed", "timed out waiting"),
                cond("Stalled", "True", "RetriesExceeded", "retries exhausted"),
            ],
            vec![snap("0.2.0", "failed")],
        );
        assert_eq!(
            release_state(&observe(Some(&failed), None)),
            (AppState::Failed, "timed out waiting".into())
        );
        let rolled = release(
            vec![
                cond(
                    "Ready",
                    "False",
                    "UpgradeFailed",
                    "upgrade to 0.2.0 timed out",
                ),
                cond("Remediated", "True", "RollbackSucceeded", "rolled back"),
            ],
            vec![snap("0.1.0", "deployed"), snap("0.2.0", "failed")],
        );
        assert_eq!(
            release_state(&observe(Some(&rolled), None)),
            (AppState::RolledBack, "upgrade to 0.2.0 timed out".into())
        );
        assert_eq!(running_version(&rolled).as_deref(), Some("0.1.0"));
        let progressing = release(
            vec![cond("Ready", "Unknown", "Progressing", "installing")],
            vec![],
        );
        assert_eq!(
            release_state(&observe(Some(&progressing), None)),
            (AppState::Installing, "installing".into())
        );
    }

    #[test]
    fn resolved_versions_read_both_kinds_of_source() {
        let chart = SourceStatus {
            conditions: vec![cond("Ready", "True", "ChartPullSucceeded", "")],
            artifact: Some(Artifact {
                revision: "0.3.1".into(),
            }),
            ..SourceStatus::default()
        };
        assert_eq!(
            resolved_version(&chart, ""),
            Some(semver::Version::new(0, 3, 1))
        );
        let oci = SourceStatus {
            conditions: vec![cond("Ready", "True", "Succeeded", "")],
            artifact: Some(Artifact {
                revision: "v1.21.2@sha256:abc".into(),
            }),
            ..SourceStatus::default()
        };
        assert_eq!(
            resolved_version(&oci, "v"),
            Some(semver::Version::new(1, 21, 2))
        );
        let not_ready = SourceStatus {
            conditions: vec![cond("Ready", "False", "Failed", "")],
            ..chart
        };
        assert_eq!(resolved_version(&not_ready, ""), None);
    }
}
