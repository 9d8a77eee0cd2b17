//! `stackspin backup ...` and `stackspin restore ...`: asking for backups and restores in the
//! database, and following what `stackspin serve`'s operator makes of them.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};
use stackspin_domain::settings::Settings;
use stackspin_storage::{
    Backup, BackupPhase, BackupReason, Restore, RestoreState, RestoreStep, Store,
};

use crate::cli::{BackupCommand, DbCommand, RestoreArgs, RestoreCommand};
use crate::{open_existing_store, output};

const POLL: Duration = Duration::from_millis(500);
/// After this long with nothing picked up, say who does the work.
const NOBODY_HINT: Duration = Duration::from_secs(20);

pub async fn db(settings: &Settings, cmd: DbCommand, json: bool) -> Result<()> {
    match cmd {
        DbCommand::Snapshot { out } => {
            let store = open_existing_store(settings).await?;
            let info = store.snapshot(&out).await?;
            output::emit(json, &info, || {
                format!(
                    "Wrote a {} snapshot of the database ({}, schema {}) to {}.",
                    info.backend,
                    stackspin_domain::size::human_bytes(info.bytes as i64),
                    info.schema_version,
                    out.display()
                )
            })
        }
        DbCommand::RestoreSnapshot { file } => {
            let info = Store::restore_snapshot(&settings.database, &file).await?;
            output::emit(json, &info, || {
                format!(
                    "Restored the database from {} (schema {}). Start `stackspin serve` again.",
                    file.display(),
                    info.schema_version
                )
            })
        }
    }
}

pub async fn backup(settings: &Settings, cmd: BackupCommand, json: bool) -> Result<()> {
    let store = open_existing_store(settings).await?;
    match cmd {
        BackupCommand::List => {
            let backups = store.backups().await?;
            output::emit(json, &backups, || {
                if backups.is_empty() {
                    return "No backups yet.".into();
                }
                let rows: Vec<Vec<String>> = backups
                    .iter()
                    .map(|b| {
                        vec![
                            b.name.clone(),
                            b.app.clone().unwrap_or_else(|| "platform".into()),
                            b.reason.as_str().into(),
                            b.phase.as_str().into(),
                            b.items.to_string(),
                            stackspin_domain::size::human_bytes(b.bytes),
                            when(Some(b.created_at)),
                            when(b.expires_at),
                        ]
                    })
                    .collect();
                output::table(
                    &[
                        "NAME", "OF", "WHY", "STATE", "ITEMS", "VOLUMES", "MADE", "EXPIRES",
                    ],
                    &rows,
                )
            })
        }
        BackupCommand::Show { backup } => {
            let Some(b) = store.backup(&backup).await? else {
                bail!("no backup named {backup}: see `stackspin backup list`");
            };
            output::emit(json, &b, || describe(&b))
        }
        BackupCommand::Create { app, wait } => {
            let b = store
                .back_up_now(app.as_deref(), BackupReason::Manual, Some("cli"))
                .await?;
            let name = b.name.clone();
            crate::apps::record(
                &store,
                "backup.create",
                app.as_deref().unwrap_or("platform"),
            )
            .await;
            if !wait {
                return output::emit(json, &b, || {
                    format!(
                        "Asked for backup {name}. `stackspin serve` makes it; \
                         `stackspin backup show {name}` follows it."
                    )
                });
            }
            let b = wait_for_backup(&store, &name).await?;
            let ok = b.phase == BackupPhase::Completed;
            output::emit(json, &b, || describe(&b))?;
            if !ok {
                bail!("backup {name} did not complete: {}", why(&b));
            }
            Ok(())
        }
    }
}

async fn wait_for_backup(store: &Store, name: &str) -> Result<Backup> {
    let started = Instant::now();
    let mut hinted = false;
    loop {
        let Some(b) = store.backup(name).await? else {
            bail!("backup {name} disappeared from the database");
        };
        if b.phase.is_final() {
            return Ok(b);
        }
        if b.phase == BackupPhase::Requested && !hinted && started.elapsed() > NOBODY_HINT {
            hinted = true;
            eprintln!("Still waiting: `stackspin serve` with a cluster makes backups.");
        }
        tokio::time::sleep(POLL).await;
    }
}

pub async fn restore(settings: &Settings, args: RestoreArgs, json: bool) -> Result<()> {
    let store = open_existing_store(settings).await?;
    match args.command {
        Some(RestoreCommand::List) => {
            let restores = store.restores().await?;
            output::emit(json, &restores, || {
                if restores.is_empty() {
                    return "No restores yet.".into();
                }
                let rows: Vec<Vec<String>> = restores
                    .iter()
                    .map(|r| {
                        vec![
                            r.id.to_string(),
                            r.app.clone(),
                            r.backup.clone(),
                            r.state.as_str().into(),
                            step_title(r.step).into(),
                            when(Some(r.requested_at)),
                        ]
                    })
                    .collect();
                output::table(&["ID", "APP", "FROM", "STATE", "STEP", "ASKED"], &rows)
            })
        }
        Some(RestoreCommand::Status { id, follow }) => {
            let Some(r) = store.restore(id).await? else {
                bail!("no restore {id}: see `stackspin restore list`");
            };
            if follow {
                return follow_restore(&store, r, json).await;
            }
            output::emit(json, &r, || {
                let mut lines: Vec<String> = r.events.iter().map(event_line).collect();
                lines.push(summary(&r));
                lines.join("\n")
            })
        }
        None => {
            let (Some(app), Some(from)) = (args.app, args.from) else {
                bail!("say which app and which backup: stackspin restore APP --from BACKUP");
            };
            let r = match store.request_restore(&app, &from, Some("cli")).await? {
                Ok(r) => r,
                Err(refusal) => bail!("{refusal}"),
            };
            crate::apps::record(&store, "restore.start", &app).await;
            if args.no_wait {
                return output::emit(json, &r, || {
                    format!(
                        "Asked to restore {app} from {from} (restore {}). `stackspin serve` \
                         does it; `stackspin restore status {} --follow` follows it.",
                        r.id, r.id
                    )
                });
            }
            if !json {
                println!(
                    "Restoring {app} from {from} (restore {}). Its current data is backed up first.",
                    r.id
                );
            }
            follow_restore(&store, r, json).await
        }
    }
}

/// Prints each step as the operator records it, until the restore ends; fails when it does.
async fn follow_restore(store: &Store, r: Restore, json: bool) -> Result<()> {
    let id = r.id;
    let started = Instant::now();
    let mut printed = 0;
    let mut hinted = false;
    let last = loop {
        let Some(r) = store.restore(id).await? else {
            bail!("restore {id} disappeared from the database");
        };
        if !json {
            for e in &r.events[printed.min(r.events.len())..] {
                println!("{}", event_line(e));
            }
        }
        printed = r.events.len();
        if r.state != RestoreState::Running {
            break r;
        }
        if r.events.len() <= 1 && !hinted && started.elapsed() > NOBODY_HINT {
            hinted = true;
            eprintln!("Still waiting: `stackspin serve` with a cluster does restores.");
        }
        tokio::time::sleep(POLL).await;
    };
    output::emit(json, &last, || summary(&last))?;
    if last.state == RestoreState::Failed {
        bail!("restore {id} of {} failed", last.app);
    }
    Ok(())
}

fn summary(r: &Restore) -> String {
    match r.state {
        RestoreState::Done => {
            let took = r
                .finished_at
                .map(|f| (f - r.requested_at).num_seconds())
                .unwrap_or(0);
            format!(
                "Restored {} from {} in {took} s. The data it had before is in {}.",
                r.app,
                r.backup,
                r.safety_backup.as_deref().unwrap_or("no safety backup")
            )
        }
        RestoreState::Failed => format!("Restore {} failed. {}", r.id, r.message),
        RestoreState::Running => format!("Restore {} is at: {}.", r.id, step_title(r.step)),
    }
}

fn event_line(e: &stackspin_storage::RestoreEvent) -> String {
    format!(
        "{}  {:<22} {}",
        e.at.format("%H:%M:%S"),
        step_title(e.step),
        e.message
    )
}

/// The steps in words, numbered as the command prints them.
pub fn step_title(s: RestoreStep) -> &'static str {
    match s {
        RestoreStep::SafetyBackup => "1/6 safety backup",
        RestoreStep::Suspend => "2/6 stop the app",
        RestoreStep::Remove => "3/6 remove its data",
        RestoreStep::Restore => "4/6 restore",
        RestoreStep::Resume => "5/6 start the app",
        RestoreStep::WaitReady => "6/6 wait until ready",
        RestoreStep::Done => "done",
    }
}

fn describe(b: &Backup) -> String {
    let mut lines = vec![
        format!("Backup:   {}", b.name),
        format!(
            "Of:       {}",
            b.app.clone().unwrap_or_else(|| "the whole platform".into())
        ),
        format!("Apps:     {}", b.apps.join(", ")),
        format!("Why:      {}", b.reason.as_str()),
        format!("State:    {}", b.phase.as_str().replace('_', " ")),
        format!("Items:    {}", b.items),
        format!("Volumes:  {}", stackspin_domain::size::human_bytes(b.bytes)),
        format!("Made:     {}", when(Some(b.created_at))),
        format!("Finished: {}", when(b.completed_at)),
        format!("Expires:  {}", when(b.expires_at)),
    ];
    if b.errors > 0 || b.warnings > 0 {
        lines.push(format!(
            "Problems: {} errors, {} warnings",
            b.errors, b.warnings
        ));
    }
    if !b.message.is_empty() {
        lines.push(format!("Message:  {}", b.message));
    }
    lines.join("\n")
}

fn why(b: &Backup) -> String {
    if b.message.is_empty() {
        b.phase.as_str().replace('_', " ")
    } else {
        b.message.clone()
    }
}

fn when(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "-".into())
}
