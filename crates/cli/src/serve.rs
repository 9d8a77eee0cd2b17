//! `stackspin serve`: the control plane process.

use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use stackspin_catalog::Catalog;
use stackspin_domain::{
    NewUser, UserName,
    password::{HashParams, Password},
    secret::new_setup_password,
    settings::Settings,
};
use stackspin_operator::{Operator, Settings as OperatorSettings};
use stackspin_platform::{ClusterConfig, RawClusterConfig};
use stackspin_storage::Store;

use crate::cli::ServeArgs;
use stackspin_web::platform::Platform;
use stackspin_web::{Application, ProviderOptions};

/// What the operator needs when `serve` has a cluster.
pub struct Cluster {
    client: kube::Client,
    config: ClusterConfig,
    interval: std::time::Duration,
    volume_data: bool,
    prometheus_url: Option<String>,
}

/// Connects to the cluster if there is one, and reads what the operator needs. Done before
/// the database is touched, so a bad kubeconfig or cluster.toml stops `serve` at once.
pub async fn cluster(args: &ServeArgs) -> Result<Option<Cluster>> {
    let Some(client) = stackspin_operator::connect(args.kubeconfig.as_deref()).await? else {
        if args.cluster_config.is_some() {
            tracing::info!("no cluster (no --kubeconfig, not in a pod): apps are only recorded");
        }
        return Ok(None);
    };
    let Some(path) = &args.cluster_config else {
        // In a pod the chart may not have been given the configuration yet: serve people
        // anyway and say what is missing. A kubeconfig given by hand without one is a mistake.
        if args.kubeconfig.is_none() {
            tracing::warn!(
                "in a cluster but without a cluster configuration (operator.clusterConfig in \
                 the chart): the operator does not run, apps are only recorded"
            );
            return Ok(None);
        }
        bail!(
            "the operator needs the cluster configuration: pass --cluster-config FILE \
             (cluster.toml with domain, ip_address and admin_email)"
        );
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let config = RawClusterConfig::from_toml(&text)
        .and_then(RawClusterConfig::resolve)
        .with_context(|| path.display().to_string())?;
    Ok(Some(Cluster {
        client,
        config,
        interval: std::time::Duration::from_secs(args.operator_interval),
        volume_data: !args.backup_objects_only,
        prometheus_url: args.prometheus_url.clone(),
    }))
}

/// Reads a setup password file: one line, long enough to be a password nobody guesses.
pub fn read_setup_password(path: &std::path::Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the setup password file {}", path.display()))?;
    let password = text.trim().to_string();
    if password.chars().count() < 16 || password.contains(char::is_whitespace) {
        bail!(
            "the setup password in {} must be one word of at least 16 characters",
            path.display()
        );
    }
    Ok(password)
}

pub async fn run(
    settings: Settings,
    cluster: Option<Cluster>,
    catalog: Arc<Catalog>,
    setup_password: Option<String>,
) -> Result<()> {
    let keys = crate::platform_key::load_or_create(&settings.secret_key_file)?;
    let store = Store::connect(&settings.database)
        .await?
        .with_secret_keys(keys);
    // Seals what an earlier version stored in the clear (and anything under an old key).
    let resealed = store.reseal_secrets().await?;
    if resealed > 0 {
        tracing::info!(resealed, "sealed secrets with the platform key");
    }
    let durability = store.durability().await?;
    tracing::info!(
        backend = store.backend_name(),
        database = %settings.database,
        durability,
        "database ready"
    );
    bootstrap_first_admin(&settings, &store, setup_password).await?;

    let signal = shutdown_signal()?;
    // One signal stops both the server and the operator.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let shutdown = {
        let stop_tx = stop_tx.clone();
        async move {
            signal.await;
            let _ = stop_tx.send(true);
        }
    };
    let mut platform = Platform::without_cluster(catalog);
    let operator = cluster.map(|c| {
        let domain = c.config.domain.clone();
        let admin_email = c.config.admin_email.clone();
        let backups = c.config.backup_s3.as_ref().map(|b| {
            let config = c.config.clone();
            stackspin_web::platform::BackupPlan {
                time: b.time.clone(),
                time_zone: b.time_zone.clone(),
                retention_days: b.retention_days,
                next_run: Arc::new(move |now| config.next_backup(now)),
            }
        });
        let op = Operator::new(
            c.client,
            store.clone(),
            platform.catalog.clone(),
            c.config,
            OperatorSettings {
                interval: c.interval,
                volume_data: c.volume_data,
                prometheus_url: c.prometheus_url.clone(),
                ..OperatorSettings::default()
            },
        );
        let (stats, leader) = (op.stats(), op.clone());
        platform.cluster = Some(stackspin_web::platform::Cluster {
            domain,
            admin_email,
            wake: op.waker(),
            backups,
            operator: Some(Arc::new(move || {
                let s = stats.snapshot();
                stackspin_web::platform::OperatorSignals {
                    rounds_ok: s.rounds_ok,
                    rounds_failed: s.rounds_failed,
                    last_round_seconds: s.last_round_seconds,
                    last_success_unix: s.last_success_unix,
                    last_problems: s.last_problems,
                    leading: leader.is_leading(),
                }
            })),
        });
        let mut rx = stop_rx.clone();
        tracing::info!("app operator started");
        tokio::spawn(op.run(async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }))
    });
    let app = Application::build_full(
        &settings,
        store.clone(),
        ProviderOptions::default(),
        platform,
    )
    .await;
    // However the server ends (a signal, or failing to start), the operator stops with it.
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            let _ = stop_tx.send(true);
            return Err(e.into());
        }
    };
    let public_url = app.public_url().clone();
    tracing::info!(listen = %app.local_addr(), public_url = %public_url, "stackspin is serving");
    if std::io::stdout().is_terminal() {
        print_welcome(&store, public_url.as_str()).await;
    }
    let served = app.run_until_stopped(shutdown).await;
    let _ = stop_tx.send(true);
    served.context("server failed")?;
    if let Some(op) = operator
        && let Err(e) = op.await
    {
        tracing::warn!(error = %e, "the operator stopped abnormally");
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// On an empty database, creates the first admin with a generated password: the setup
/// credentials, shown by `stackspin admin-credentials`.
async fn bootstrap_first_admin(
    settings: &Settings,
    store: &Store,
    setup_password: Option<String>,
) -> Result<()> {
    if store.count_users().await? > 0 {
        return Ok(());
    }
    let Some(email) = settings.admin_email.clone() else {
        bail!(
            "the database has no users yet: pass --admin-email (or set STACKSPIN_ADMIN_EMAIL, \
             or admin_email in the config file) to create the first admin"
        );
    };
    let password = setup_password.unwrap_or_else(new_setup_password);
    let hash = {
        let password = Password::new(&password)?;
        // argon2 is deliberately slow; keep it off the async worker threads.
        tokio::task::spawn_blocking(move || HashParams::default().hash(&password)).await??
    };
    let new = NewUser {
        email,
        name: UserName::parse("Admin")?,
        password_hash: Some(hash),
        is_admin: true,
    };
    match store.bootstrap_admin(&new, &password).await? {
        Some(user) => tracing::info!(
            email = %user.email,
            "created the first admin; `stackspin admin-credentials` shows the setup password"
        ),
        // Another replica got there first.
        None => tracing::info!("another server created the first admin"),
    }
    Ok(())
}

/// For a person running `serve` in a terminal: where to go and how to log in. Only on a
/// terminal, because in a cluster stdout ends up in the log store, and passwords never go
/// there.
async fn print_welcome(store: &Store, public_url: &str) {
    println!("\nStackspin is running: open {public_url}");
    match store.setup_credentials().await {
        Ok(Some(c)) => println!(
            "Setup credentials of the first admin:\n  email:    {}\n  password: {}\n\
             (`stackspin admin-credentials` shows them again.)\n",
            c.email, c.password
        ),
        Ok(None) => println!(),
        Err(e) => tracing::warn!(error = %e, "cannot read the setup credentials"),
    }
}

/// Registers the Ctrl-C and SIGTERM handlers now and returns a future that completes on
/// either. Registering before the server says it is serving matters: a SIGTERM arriving in
/// between would otherwise kill the process without a graceful stop.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
            tracing::info!("shutting down: finishing requests in flight");
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down: finishing requests in flight");
        })
    }
}
