//! `stackspin app ...`: registering external apps for single sign-on.

use anyhow::Result;
use serde::Serialize;
use stackspin_domain::{
    App, AppName, ClientId, RedirectUri, Role, SigningAlg,
    app::AppInput,
    secret::{hash_secret, new_client_id, new_client_secret},
    settings::Settings,
};

use crate::{cli::AppCommand, installs, open_existing_store, output};

#[derive(Serialize)]
struct AppView<'a> {
    name: &'a str,
    display_name: &'a str,
    url: &'a str,
    client_id: &'a str,
    public: bool,
    redirect_uris: Vec<&'a str>,
    post_logout_redirect_uris: Vec<&'a str>,
    backchannel_logout_uri: Option<&'a str>,
    icon_url: Option<&'a str>,
    default_role: Role,
    id_token_alg: SigningAlg,
    created_at: String,
}

impl<'a> From<&'a App> for AppView<'a> {
    fn from(a: &'a App) -> Self {
        AppView {
            name: a.name.as_str(),
            display_name: &a.display_name,
            url: &a.url,
            client_id: &a.client_id.0,
            public: a.is_public(),
            redirect_uris: a.redirect_uris.iter().map(RedirectUri::as_str).collect(),
            post_logout_redirect_uris: a
                .post_logout_redirect_uris
                .iter()
                .map(RedirectUri::as_str)
                .collect(),
            backchannel_logout_uri: a.backchannel_logout_uri.as_deref(),
            icon_url: a.icon_url.as_deref(),
            default_role: a.default_role,
            id_token_alg: a.id_token_alg,
            created_at: a.created_at.to_rfc3339(),
        }
    }
}

pub async fn run(
    settings: &Settings,
    cmd: AppCommand,
    json: bool,
    catalog: Option<&std::path::Path>,
) -> Result<()> {
    match cmd {
        AppCommand::Catalog => {
            let catalog = installs::load_catalog(catalog)?;
            installs::catalog(settings, &catalog, json).await
        }
        AppCommand::Install {
            name,
            subdomain,
            pin,
        } => {
            let catalog = installs::load_catalog(catalog)?;
            installs::install(settings, &catalog, &name, subdomain.as_deref(), pin, json).await
        }
        AppCommand::Uninstall { name, purge } => {
            installs::uninstall(settings, &name, purge, json).await
        }
        AppCommand::Status { name } => installs::status(settings, name.as_deref(), json).await,
        AppCommand::Update { name, all } => {
            installs::update(settings, name.as_deref(), all, json).await
        }
        AppCommand::AutoUpdate { name, setting } => {
            installs::auto_update(settings, &name, setting == "on", json).await
        }
        AppCommand::Register {
            name,
            url,
            redirect_uris,
            post_logout_redirect_uris,
            backchannel_logout_uri,
            icon_url,
            public,
            display_name,
            default_role,
            id_token_alg,
        } => {
            let new = AppInput {
                name,
                display_name,
                url,
                redirect_uris,
                post_logout_redirect_uris,
                backchannel_logout_uri,
                icon_url,
                public,
                default_role: Some(default_role),
                id_token_alg: Some(id_token_alg),
            }
            .validate()
            .map_err(|errors| {
                // One line: the first problem is enough to fix and rerun.
                let (_, first) = errors
                    .into_iter()
                    .next()
                    .unwrap_or(("", "invalid app".into()));
                anyhow::anyhow!(first)
            })?;
            let store = open_existing_store(settings).await?;
            // The secret is shown once, here; only its hash is stored.
            let secret = (!new.public).then(new_client_secret);
            let app = store
                .create_app(
                    &new,
                    ClientId(new_client_id()),
                    secret.as_deref().map(hash_secret),
                )
                .await?;
            record(&store, "client.registered", app.name.as_str()).await;
            let issuer = crate::served_public_url(settings, &store).await;
            #[derive(Serialize)]
            struct Registered<'a> {
                name: &'a str,
                client_id: &'a str,
                client_secret: Option<&'a str>,
                issuer: &'a str,
            }
            output::emit(
                json,
                &Registered {
                    name: app.name.as_str(),
                    client_id: &app.client_id.0,
                    client_secret: secret.as_deref(),
                    issuer: issuer.as_str(),
                },
                || {
                    let mut s = format!(
                        "Registered {}.\n  issuer:        {}\n  client_id:     {}\n",
                        app.name, issuer, app.client_id
                    );
                    match &secret {
                        Some(secret) => s.push_str(&format!(
                            "  client_secret: {secret}\nStore the secret now: it is not shown again.\n"
                        )),
                        None => s.push_str("  public client: no secret, PKCE required.\n"),
                    }
                    s
                },
            )
        }
        AppCommand::List => {
            let store = open_existing_store(settings).await?;
            let apps = store.list_apps().await?;
            let views: Vec<AppView> = apps.iter().map(AppView::from).collect();
            output::emit(json, &views, || {
                let rows: Vec<Vec<String>> = apps
                    .iter()
                    .map(|a| {
                        vec![
                            a.name.to_string(),
                            a.client_id.to_string(),
                            if a.is_public() {
                                "public"
                            } else {
                                "confidential"
                            }
                            .into(),
                            a.default_role.to_string(),
                            a.url.clone(),
                        ]
                    })
                    .collect();
                output::table(&["NAME", "CLIENT ID", "TYPE", "DEFAULT ROLE", "URL"], &rows)
            })
        }
        AppCommand::Remove { name } => {
            let name = AppName::parse(&name)?;
            let store = open_existing_store(settings).await?;
            let app = store.remove_app(&name).await?;
            record(&store, "client.removed", app.name.as_str()).await;
            output::emit(json, &AppView::from(&app), || {
                format!("Removed {}.", app.name)
            })
        }
    }
}

/// Records a client change made from the command line (a failure to record only warns: the
/// change itself has happened).
pub(crate) async fn record(store: &stackspin_storage::Store, kind: &str, app: &str) {
    let mut e = stackspin_storage::AuditEvent::new(kind);
    e.actor = Some("cli".into());
    e.app = Some(app.to_owned());
    if let Err(err) = store.record_audit(&e).await {
        tracing::warn!(error = %err, "cannot record audit event");
    }
}
