//! `stackspin admin-credentials`: the setup credentials of the first admin.

use anyhow::{Result, bail};
use serde::Serialize;
use stackspin_domain::{password::HashParams, settings::Settings};

use crate::{open_existing_store, output};

pub async fn run(settings: &Settings, json: bool) -> Result<()> {
    let store = open_existing_store(settings).await?;
    let Some(creds) = store.setup_credentials().await? else {
        bail!(
            "no setup credentials: start `stackspin serve --admin-email EMAIL` on an empty \
             database to create the first admin (or the first admin has been deleted)"
        );
    };
    // Tell the operator whether the setup password still works: once the admin changes it,
    // these credentials are only a record of how the platform was set up.
    let still_valid = match store.user_by_id(creds.user_id).await? {
        Some(user) => match user.password_hash {
            Some(hash) => {
                let password = creds.password.clone();
                tokio::task::spawn_blocking(move || {
                    HashParams::default().verify(&password, &hash).matched()
                })
                .await?
            }
            None => false,
        },
        None => false,
    };
    let login_url = crate::served_public_url(settings, &store).await;
    #[derive(Serialize)]
    struct View<'a> {
        email: &'a str,
        password: &'a str,
        login_url: &'a str,
        still_valid: bool,
    }
    output::emit(
        json,
        &View {
            email: creds.email.as_str(),
            password: &creds.password,
            login_url: login_url.as_str(),
            still_valid,
        },
        || {
            let mut s = format!(
                "Setup credentials (log in at {login_url}):\n  email:    {}\n  password: {}\n\
                 These are the setup credentials: they are not updated when the admin changes the password.",
                creds.email, creds.password
            );
            if !still_valid {
                s.push_str("\nThe admin has changed the password since: these no longer log in.");
            }
            s
        },
    )
}
