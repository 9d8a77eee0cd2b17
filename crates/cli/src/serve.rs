//! `stackspin serve`: the control plane process.

use std::io::IsTerminal;

use anyhow::{Context, Result, bail};
use stackspin_domain::{
    NewUser, UserName,
    password::{HashParams, Password},
    secret::new_setup_password,
    settings::Settings,
};
use stackspin_storage::Store;
use stackspin_web::Application;

pub async fn run(settings: Settings) -> Result<()> {
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
    bootstrap_first_admin(&settings, &store).await?;

    let shutdown = shutdown_signal()?;
    let app = Application::build(&settings, store.clone()).await?;
    let public_url = app.public_url().clone();
    tracing::info!(listen = %app.local_addr(), public_url = %public_url, "stackspin is serving");
    if std::io::stdout().is_terminal() {
        print_welcome(&store, public_url.as_str()).await;
    }
    app.run_until_stopped(shutdown)
        .await
        .context("server failed")?;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// On an empty database, creates the first admin with a generated password: the setup
/// credentials, shown by `stackspin admin-credentials`.
async fn bootstrap_first_admin(settings: &Settings, store: &Store) -> Result<()> {
    if store.count_users().await? > 0 {
        return Ok(());
    }
    let Some(email) = settings.admin_email.clone() else {
        bail!(
            "the database has no users yet: pass --admin-email (or set STACKSPIN_ADMIN_EMAIL, \
             or admin_email in the config file) to create the first admin"
        );
    };
    let password = new_setup_password();
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
