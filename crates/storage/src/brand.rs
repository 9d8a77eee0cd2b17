//! The organisation's name and logo, kept in the settings table so every replica and the
//! CLI's mails agree on them.

use stackspin_domain::brand::{Logo, OrgName};

use crate::{StorageError, Store, with_writer};

const NAME_KEY: &str = "org_name";
const LOGO_KEY: &str = "org_logo";

/// What the Dashboard and the mails show of the organisation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Brand {
    pub name: Option<OrgName>,
    pub logo: Option<Logo>,
}

impl Store {
    pub async fn brand(&self) -> Result<Brand, StorageError> {
        let name = match self.setting(NAME_KEY).await? {
            // A name that no longer passes the rules (they may tighten) is shown as none
            // rather than failing every page.
            Some(text) => OrgName::parse(&text).ok().flatten(),
            None => None,
        };
        let logo = match self.setting(LOGO_KEY).await? {
            Some(text) => {
                let logo = Logo::from_setting(&text);
                if logo.is_none() {
                    tracing::warn!("the stored logo is damaged; showing none");
                }
                logo
            }
            None => None,
        };
        Ok(Brand { name, logo })
    }

    /// Sets or (with `None`) clears the organisation's name.
    pub async fn set_org_name(&self, name: Option<&OrgName>) -> Result<(), StorageError> {
        match name {
            Some(n) => self.set_setting(NAME_KEY, n.as_str()).await,
            None => self.delete_setting(NAME_KEY).await,
        }
    }

    /// Sets or (with `None`) removes the logo.
    pub async fn set_logo(&self, logo: Option<&Logo>) -> Result<(), StorageError> {
        match logo {
            Some(l) => self.set_setting(LOGO_KEY, &l.to_setting()).await,
            None => self.delete_setting(LOGO_KEY).await,
        }
    }

    pub async fn delete_setting(&self, key: &str) -> Result<(), StorageError> {
        with_writer!(self, pool => {
            sqlx::query("DELETE FROM settings WHERE key = $1")
                .bind(key)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
