//! Each installed app's OpenID Connect client in the identity store: registered from its
//! catalog entry, with the secret generated once for it (the app gets the same secret from a
//! Secret the operator writes), removed when the app is uninstalled.

use stackspin_catalog::{ClaimShape, Entry, Tool};
use stackspin_domain::app::{parse_app_home, parse_backchannel_uri};
use stackspin_domain::{AppName, ClientId, NewApp, RedirectUri, Role, SigningAlg, secret};
use stackspin_storage::{GroupsClaim, StorageError, Store};

/// Why an app's client could not be registered, in the admin's words.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the single sign-on client: {0}")]
    Invalid(String),
    #[error("an app named {0} is already registered by hand; remove it first")]
    Taken(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

fn new_app(entry: &Entry, host: &str) -> Result<NewApp, ClientError> {
    let oidc = entry
        .oidc
        .as_ref()
        .ok_or_else(|| ClientError::Invalid("the entry has no OIDC client".into()))?;
    let bad = |e: stackspin_domain::app::AppError| ClientError::Invalid(e.to_string());
    let uri = |path: &String| RedirectUri::parse(&format!("https://{host}{path}")).map_err(bad);
    NewApp {
        name: AppName::parse(&entry.name).map_err(bad)?,
        display_name: entry.title.clone(),
        url: parse_app_home(&format!("https://{host}/")).map_err(bad)?,
        redirect_uris: oidc
            .redirect_paths
            .iter()
            .map(uri)
            .collect::<Result<_, _>>()?,
        post_logout_redirect_uris: oidc
            .post_logout_paths
            .iter()
            .map(uri)
            .collect::<Result<_, _>>()?,
        backchannel_logout_uri: oidc
            .backchannel_logout_path
            .as_ref()
            .map(|p| parse_backchannel_uri(&format!("https://{host}{p}")))
            .transpose()
            .map_err(bad)?,
        icon_url: None,
        public: false,
        default_role: Role::User,
        id_token_alg: SigningAlg::Rs256,
    }
    .validate()
    .map_err(bad)
}

/// Makes the identity store hold the app's client as the catalog describes it, with this
/// secret. Idempotent: an unchanged client is not written.
pub async fn ensure(
    store: &Store,
    entry: &Entry,
    host: &str,
    client_secret: &str,
) -> Result<(), ClientError> {
    let new = new_app(entry, host)?;
    let hash = secret::hash_secret(client_secret);
    let id = match store.app_by_name(&new.name).await? {
        None => {
            store
                .create_app(&new, ClientId(entry.name.clone()), Some(hash))
                .await?
                .id
        }
        Some(existing) => {
            // Apps an admin registered by hand get random client ids; ours is the app's name.
            if existing.client_id.0 != entry.name {
                return Err(ClientError::Taken(entry.name.clone()));
            }
            let same = existing.display_name == new.display_name
                && existing.url == new.url.to_string()
                && existing.redirect_uris == new.redirect_uris
                && existing.post_logout_redirect_uris == new.post_logout_redirect_uris
                && existing.backchannel_logout_uri
                    == new.backchannel_logout_uri.as_ref().map(|u| u.to_string());
            if !same {
                store.update_app(&new.name, &new).await?;
            }
            if existing.client_secret_hash.as_deref() != Some(hash.as_str()) {
                store.set_client_secret(&new.name, &hash).await?;
            }
            existing.id
        }
    };
    // The claim as the app needs it (HedgeDoc: admins are users too).
    let shape = match entry.oidc.as_ref().map(|o| o.claim) {
        Some(ClaimShape::RoleAndUser) => GroupsClaim::RoleAndUser,
        _ => GroupsClaim::Role,
    };
    if store.groups_claim(id).await? != shape {
        store.set_groups_claim(&new.name, shape).await?;
    }
    Ok(())
}

/// Removes the app's client (and so every role people had in it), if it is ours.
pub async fn remove(store: &Store, app: &str) -> Result<(), ClientError> {
    let Ok(name) = AppName::parse(app) else {
        return Ok(());
    };
    match store.app_by_name(&name).await? {
        Some(existing) if existing.client_id.0 == app => match store.remove_app(&name).await {
            Ok(_) | Err(StorageError::AppNotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        },
        _ => Ok(()),
    }
}

/// Makes the identity store hold a tool behind forward-auth (Prometheus, Alertmanager) as an
/// app: no client secret (it never signs in by OpenID Connect), nobody by default, and every
/// admin without a role of their own there an admin of it. Idempotent.
pub async fn ensure_tool(store: &Store, tool: &Tool, host: &str) -> Result<(), ClientError> {
    let bad = |e: stackspin_domain::app::AppError| ClientError::Invalid(e.to_string());
    let new = NewApp {
        name: AppName::parse(&tool.name).map_err(bad)?,
        display_name: tool.title.clone(),
        url: parse_app_home(&format!("https://{host}/")).map_err(bad)?,
        // Its own hand-over address: without a secret no code could be redeemed anyway.
        redirect_uris: vec![
            RedirectUri::parse(&format!("https://{host}/.stackspin/handover")).map_err(bad)?,
        ],
        post_logout_redirect_uris: Vec::new(),
        backchannel_logout_uri: None,
        icon_url: None,
        public: false,
        default_role: Role::None,
        id_token_alg: SigningAlg::Rs256,
    }
    .validate()
    .map_err(bad)?;
    let id = match store.app_by_name(&new.name).await? {
        None => {
            store
                .create_app(&new, ClientId(tool.name.clone()), None)
                .await?
                .id
        }
        Some(existing) if existing.client_id.0 != tool.name => {
            return Err(ClientError::Taken(tool.name.clone()));
        }
        Some(existing) => {
            if existing.display_name != new.display_name || existing.url != new.url.to_string() {
                store.update_app(&new.name, &new).await?;
            }
            existing.id
        }
    };
    store.grant_admins_without_role(id, Role::Admin).await?;
    Ok(())
}
