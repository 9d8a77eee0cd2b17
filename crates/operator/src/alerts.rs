//! Mails to the admin about backups: a nightly (or pre-update) backup that failed, a nightly
//! backup that did not run, a restore drill that failed. Each says what happened in plain
//! words, what to do, and links to the Dashboard's Backups page. Each is sent once: the
//! failures when first seen, the missing backup once per night.

use chrono::{DateTime, Duration, Utc};
use kube::api::Api;
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use stackspin_platform::desired;
use stackspin_storage::{Backup, BackupReason, Drill, OutgoingMail};

use crate::backups::VELERO_NAMESPACE;
use crate::{Operator, OperatorError};

/// The setting that remembers the night a missing backup was reported for.
const MISSING_NOTIFIED: &str = "backups.missing_notified";
/// How long after its time a nightly backup counts as missing.
const GRACE: i64 = 2;

impl Operator {
    fn backups_page(&self) -> String {
        format!(
            "https://{}/admin/backups",
            desired::dashboard_host(&self.catalog, &self.config)
        )
    }

    async fn mail_admin(&self, subject: String, body: String) -> Result<(), OperatorError> {
        self.store
            .queue_mail(&OutgoingMail {
                to: self.config.admin_email.clone(),
                subject,
                body,
            })
            .await?;
        Ok(())
    }

    /// A backup that just failed (seen by the mirror as failed for the first time).
    pub(crate) async fn backup_failed(&self, b: &Backup) -> Result<(), OperatorError> {
        if !matches!(b.reason, BackupReason::Scheduled | BackupReason::Update) {
            // Made by hand or by a restore: the admin is looking at it already.
            return Ok(());
        }
        let what = match (&b.reason, &b.app) {
            (BackupReason::Update, Some(app)) => format!("The backup of {app} before its update"),
            _ => "Last night's backup".to_string(),
        };
        let why = if b.message.is_empty() {
            format!(
                "Velero reported {} errors and {} warnings.",
                b.errors, b.warnings
            )
        } else {
            b.message.clone()
        };
        let todo = match b.reason {
            BackupReason::Update => {
                "Automatic updates of this app wait until a backup succeeds.".to_string()
            }
            _ => "Until a backup succeeds, changes since the last good backup are not safe."
                .to_string(),
        };
        self.mail_admin(
            format!("Stackspin: a backup failed ({})", b.name),
            format!(
                "{what} ({}) failed.\n\n{why}\n\n{todo}\n\nWhat to do: check that the backup \
                 store (the backup_s3_* settings) can be reached and has space, then use \
                 \"Back up now\" on the Backups page:\n{}\n",
                b.name,
                self.backups_page()
            ),
        )
        .await
    }

    /// A drill that just finished failed.
    pub(crate) async fn drill_failed(&self, d: &Drill) -> Result<(), OperatorError> {
        self.mail_admin(
            "Stackspin: a restore drill failed".into(),
            format!(
                "This week's restore drill tried to restore the latest backup of each app into a \
                 scratch copy, and something did not come back:\n\n{}\n\nYour apps were not \
                 touched. But a backup that does not restore will not help on the day you need \
                 it: look at the Backups page, make a new backup (\"Back up now\") and check \
                 the next drill:\n{}\n",
                d.message,
                self.backups_page()
            ),
        )
        .await
    }

    /// Reports, once per night, a nightly backup that should have run and did not.
    pub(crate) async fn check_missing_nightly(
        &self,
        backups: &[Backup],
    ) -> Result<(), OperatorError> {
        let now = (self.clock)();
        // The last time the schedule should have fired, at least GRACE hours ago.
        let Some(expected) = self.config.next_backup(now - Duration::hours(24 + GRACE)) else {
            return Ok(());
        };
        if expected > now - Duration::hours(GRACE) {
            return Ok(());
        }
        let ran = backups.iter().any(|b| {
            b.reason == BackupReason::Scheduled && b.created_at >= expected - Duration::minutes(10)
        });
        if ran {
            return Ok(());
        }
        // Only where Velero's backup location existed before that time: a new cluster has
        // missed nothing.
        let locations: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            VELERO_NAMESPACE,
            &ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("velero.io", "v1", "BackupStorageLocation"),
                "backupstoragelocations",
            ),
        );
        let installed_at: Option<DateTime<Utc>> = match locations.get_opt("default").await {
            Ok(l) => l
                .and_then(|l| l.metadata.creation_timestamp)
                .and_then(|t| DateTime::from_timestamp(t.0.as_second(), 0)),
            // No Velero CRDs: nothing could have run.
            Err(e) if crate::apply::is_status(&e, 404) => None,
            Err(e) => return Err(e.into()),
        };
        if installed_at.is_none_or(|t| t > expected - Duration::hours(1)) {
            return Ok(());
        }
        let night = expected.format("%Y-%m-%d").to_string();
        if self.store.setting(MISSING_NOTIFIED).await?.as_deref() == Some(night.as_str()) {
            return Ok(());
        }
        self.store.set_setting(MISSING_NOTIFIED, &night).await?;
        self.mail_admin(
            "Stackspin: last night's backup did not run".into(),
            format!(
                "No nightly backup ran at {} UTC. Velero may not be running, or cannot reach \
                 the backup store.\n\nWhat to do: check that Velero runs (`kubectl -n stackspin \
                 get pods`) and that the backup_s3_* settings are right, then use \"Back up \
                 now\" on the Backups page:\n{}\n",
                expected.format("%Y-%m-%d %H:%M"),
                self.backups_page()
            ),
        )
        .await
    }
}
