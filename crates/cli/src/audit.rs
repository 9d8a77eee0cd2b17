//! `stackspin audit`: the audit log, filtered.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use stackspin_domain::settings::Settings;
use stackspin_storage::AuditFilter;

use crate::{cli::AuditArgs, open_existing_store, output};

fn time(flag: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .with_context(|| {
                    format!("invalid --{flag} {v:?}: use RFC 3339, such as 2026-11-21T00:00:00Z")
                })
        })
        .transpose()
}

pub async fn run(settings: &Settings, args: &AuditArgs, json: bool) -> Result<()> {
    let filter = AuditFilter {
        user_email: args.user.clone(),
        app: args.app.clone(),
        kind: args.kind.clone(),
        since: time("since", args.since.as_deref())?,
        until: time("until", args.until.as_deref())?,
        limit: args.limit.clamp(1, 1000),
        offset: 0,
    };
    let store = open_existing_store(settings).await?;
    let events = store.audit_events(&filter).await?;
    output::emit(json, &events, || {
        let rows: Vec<Vec<String>> = events
            .iter()
            .map(|e| {
                vec![
                    e.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    e.kind.clone(),
                    e.user_email.clone().unwrap_or_default(),
                    e.app.clone().unwrap_or_default(),
                    e.actor.clone().or_else(|| e.ip.clone()).unwrap_or_default(),
                ]
            })
            .collect();
        output::table(&["TIME (UTC)", "EVENT", "USER", "APP", "BY / FROM"], &rows)
    })
}
