//! `stackspin`: runs the control plane and administers it.
//!
//! Errors leave through `main` as one line on stderr and exit code 1; clap handles usage
//! errors (exit code 2) and `--help` before any configuration or database is touched.

mod apps;
mod audit;
mod backups;
mod cli;
mod credentials;
mod installs;
mod manifests;
mod output;
mod platform_key;
mod provisioning;
mod serve;
mod settings;
mod users;

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Parser;
use stackspin_domain::settings::{DatabaseUrl, LogFormat, Settings};
use stackspin_storage::Store;

use cli::{Cli, Command};

// mimalloc gives freed memory back to the system within milliseconds; glibc's malloc kept the
// arenas a burst of requests and argon2 buffers had grown, so RSS after load stayed at its peak.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One TLS provider for the whole process (aws-lc-rs); failing means one was installed
    // already, which is fine.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` joins the causes with ": "; a cause with a line break of its own must not
            // break the one-line contract.
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    // Needs neither the control plane's settings nor its database: `--config` names the
    // cluster configuration here.
    if let Command::Manifests(args) = &cli.command {
        return manifests::run(cli.global.config.as_deref(), args, cli.global.json);
    }
    // Provisioning works on the cluster folder, from the admin's machine: no database.
    let root = cli.global.clusters_dir.as_path();
    let json = cli.global.json;
    match &cli.command {
        Command::Create(args) => {
            let catalog = installs::load_catalog(cli.global.catalog.as_deref())?;
            return provisioning::create(root, args, &catalog, json).await;
        }
        Command::Install(args) => {
            let catalog = installs::load_catalog(cli.global.catalog.as_deref())?;
            return provisioning::install(root, args, &catalog, json).await;
        }
        Command::Info { cluster } => {
            let catalog = installs::load_catalog(cli.global.catalog.as_deref())?;
            return provisioning::info(root, cluster, &catalog, json).await;
        }
        Command::Test {
            cluster,
            app,
            skip,
            dashboard_url,
            token,
        } => {
            let catalog = installs::load_catalog(cli.global.catalog.as_deref())?;
            let opts = provisioning::TestOptions {
                app: app.as_deref(),
                skip,
                dashboard_url: dashboard_url.as_deref(),
                token: token.as_deref(),
            };
            return provisioning::selftest(root, cluster, &catalog, &opts, json).await;
        }
        Command::Purge { cluster, confirm } => {
            return provisioning::purge(root, cluster, confirm.as_deref(), json).await;
        }
        Command::Node(cli::NodeCommand::Add {
            cluster,
            ip_address,
            accept_host_key,
            k3s_install_url,
        }) => {
            return provisioning::node_add(
                root,
                cluster,
                ip_address,
                accept_host_key.as_deref(),
                k3s_install_url.as_deref(),
                json,
            )
            .await;
        }
        Command::Secrets { cluster, name } => {
            return provisioning::secrets(root, cluster, name.as_deref(), json);
        }
        Command::AdminCredentials {
            cluster: Some(cluster),
        } => {
            let catalog = installs::load_catalog(cli.global.catalog.as_deref())?;
            return provisioning::admin_credentials(root, cluster, &catalog, json).await;
        }
        _ => {}
    }
    let serve_args = match &cli.command {
        Command::Serve(args) => Some(args),
        _ => None,
    };
    let settings = settings::load(&cli.global, serve_args)?;
    init_logging(settings.log_format, serve_args.is_some());
    match cli.command {
        Command::Serve(args) => {
            let catalog = installs::load_catalog(cli.global.catalog.as_deref())?;
            let cluster = serve::cluster(&args).await?;
            let setup_password = match &args.setup_password_file {
                Some(path) => Some(serve::read_setup_password(path)?),
                None => None,
            };
            serve::run(settings, cluster, catalog, setup_password).await
        }
        Command::AdminCredentials { .. } => credentials::run(&settings, json).await,
        // Returned from above, before the settings.
        Command::Create(_)
        | Command::Install(_)
        | Command::Info { .. }
        | Command::Test { .. }
        | Command::Secrets { .. }
        | Command::Purge { .. }
        | Command::Node(_) => Ok(()),
        Command::User(cmd) => users::run(&settings, cmd, json).await,
        Command::App(cmd) => apps::run(&settings, cmd, json, cli.global.catalog.as_deref()).await,
        Command::RequireMfa { policy } => require_mfa(&settings, &policy, json).await,
        Command::Keys(cli::KeysCommand::Rotate) => rotate_keys(&settings, json).await,
        Command::ApiToken(cli::ApiTokenCommand::Create { name, admin }) => {
            create_api_token(&settings, &name, &admin, json).await
        }
        Command::Audit(args) => audit::run(&settings, &args, json).await,
        Command::Backup(cmd) => backups::backup(&settings, cmd, json).await,
        Command::Db(cmd) => backups::db(&settings, cmd, json).await,
        Command::Restore(args) => backups::restore(&settings, args, json).await,
        Command::SecretKey(cli::SecretKeyCommand::Rotate) => {
            rotate_secret_key(&settings, json).await
        }
        // Returned from above, before the settings; kept here so the match stays exhaustive.
        Command::Manifests(args) => manifests::run(cli.global.config.as_deref(), &args, json),
    }
}

/// The public URL for links and the issuer: an explicitly configured one, else the one
/// `serve` recorded in the database (it may listen elsewhere than these settings say), else
/// the default derived from the listen address.
pub(crate) async fn served_public_url(settings: &Settings, store: &Store) -> String {
    if let Some(url) = &settings.public_url {
        return url.to_string();
    }
    match store.server_fact(stackspin_web::PUBLIC_URL_FACT).await {
        Ok(Some(url)) => url,
        _ => settings.public_url_for(settings.listen).to_string(),
    }
}

/// Rotates the signing keys; the old ones stay published for as long as an ID token lives,
/// plus a margin for clock skew.
async fn rotate_keys(settings: &Settings, json: bool) -> Result<()> {
    let store = open_existing_store(settings).await?;
    let keep =
        stackspin_web::ProviderOptions::default().id_token_lifetime + chrono::Duration::minutes(10);
    let kids = stackspin_web::oidc::keys::rotate(&store, keep).await?;
    let mut e = stackspin_storage::AuditEvent::new("keys.rotated");
    e.actor = Some("cli".into());
    e.detail = serde_json::json!({ "kids": kids });
    if let Err(err) = store.record_audit(&e).await {
        tracing::warn!(error = %err, "cannot record audit event");
    }
    output::emit(json, &serde_json::json!({ "new_kids": kids }), || {
        format!(
            "New signing keys: {}. Servers use them within 30 s; the old keys stay published for {} minutes.",
            kids.join(", "),
            keep.num_minutes()
        )
    })
}

/// Creates an admin API token. Only its hash is stored; the token is printed once.
async fn create_api_token(settings: &Settings, name: &str, admin: &str, json: bool) -> Result<()> {
    let email = stackspin_domain::Email::parse(admin)?;
    if name.trim().is_empty() {
        bail!("the token needs a name");
    }
    let store = open_existing_store(settings).await?;
    let user = store
        .user_by_email(&email)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no user with email {email}"))?;
    if !user.is_admin {
        bail!("{email} is not an admin: API tokens act with an admin's rights");
    }
    let token = format!(
        "{}{}",
        stackspin_web::api::TOKEN_PREFIX,
        stackspin_domain::secret::random_token(32)
    );
    store
        .create_api_token(
            user.id,
            name.trim(),
            &stackspin_domain::secret::hash_secret(&token),
        )
        .await?;
    let mut e = stackspin_storage::AuditEvent::new("api_token.created");
    e.actor = Some("cli".into());
    e.user_id = Some(user.id.0);
    e.user_email = Some(user.email.to_string());
    e.detail = serde_json::json!({ "name": name.trim() });
    if let Err(err) = store.record_audit(&e).await {
        tracing::warn!(error = %err, "cannot record audit event");
    }
    output::emit(
        json,
        &serde_json::json!({ "name": name.trim(), "token": token }),
        || {
            format!(
                "API token {:?} for {email}:\n  {token}\nStore it now: it is not shown again.",
                name.trim()
            )
        },
    )
}

/// Sets the two-step verification policy; it applies at each person's next sign-in.
async fn require_mfa(settings: &Settings, policy: &str, json: bool) -> Result<()> {
    let policy = policy.trim().to_ascii_lowercase();
    if !["none", "admins", "everyone"].contains(&policy.as_str()) {
        bail!("unknown policy {policy:?}: use none, admins or everyone");
    }
    let store = open_existing_store(settings).await?;
    store
        .set_setting(stackspin_web::MFA_SETTING, &policy)
        .await?;
    let mut e = stackspin_storage::AuditEvent::new("settings.changed");
    e.actor = Some("cli".into());
    e.detail = serde_json::json!({ "mfa_required": policy });
    if let Err(err) = store.record_audit(&e).await {
        tracing::warn!(error = %err, "cannot record audit event");
    }
    output::emit(json, &serde_json::json!({ "mfa_required": policy }), || {
        format!("Two-step verification is now required for: {policy}.")
    })
}

/// Logs go to stderr so stdout carries only command output (and `--json` stays parseable).
/// `serve` logs at info by default, the admin commands only warnings; `RUST_LOG` overrides.
fn init_logging(format: LogFormat, serving: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if serving { "info" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Opens the configured database for an admin command. Unlike `serve`, an admin command does
/// not create a missing SQLite database: a typo in --data-dir should say so, not quietly make
/// an empty one.
async fn open_existing_store(settings: &Settings) -> Result<Store> {
    if let DatabaseUrl::Sqlite(path) = &settings.database
        && !path.exists()
    {
        bail!(
            "no database at {}: run `stackspin serve` first, or pass --data-dir or --database-url",
            path.display()
        );
    }
    let store = Store::connect(&settings.database).await?;
    // The same key file `serve` uses (created here if an admin command runs first, as an
    // installer adding people before the first start would).
    let keys = platform_key::load_or_create(&settings.secret_key_file)?;
    Ok(store.with_secret_keys(keys))
}

/// Rotates the platform key: a new key goes first in the key file (the old one still
/// opens), every secret is resealed under it in one transaction, then the old key leaves
/// the file. Interrupted anywhere, the file still holds a key for every sealed value.
async fn rotate_secret_key(settings: &Settings, json: bool) -> Result<()> {
    let path = &settings.secret_key_file;
    let store = open_existing_store(settings).await?;
    let Some(keys) = platform_key::load(path)? else {
        bail!("no platform key at {}", path.display());
    };
    let both = keys.with_new_current();
    platform_key::replace(path, &both)?;
    let resealed = store
        .with_secret_keys(both.clone())
        .reseal_secrets()
        .await?;
    let new = both.current_only();
    platform_key::replace(path, &new)?;
    let view = serde_json::json!({
        "key": new.current_id(),
        "previous": keys.current_id(),
        "resealed": resealed,
    });
    output::emit(json, &view, || {
        format!(
            "New platform key {} (was {}); {resealed} secrets sealed again. Restart every \
             `serve` replica so it reads the new key.\n",
            new.current_id(),
            keys.current_id()
        )
    })?;
    Ok(())
}
