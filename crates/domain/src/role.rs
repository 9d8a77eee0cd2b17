//! Per-app roles: what a person may do in one app.

use std::{fmt, str::FromStr};

/// A person's role in one app. `None` means "no access": the identity provider refuses to log
/// them into that app at all, rather than leaving the decision to the app.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    User,
    None,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown role {0:?}: use admin, user or none")]
pub struct RoleError(String);

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::User, Role::None];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
            Role::None => "none",
        }
    }

    /// Whether this role lets the person log into the app.
    pub fn grants_access(self) -> bool {
        self != Role::None
    }
}

impl FromStr for Role {
    type Err = RoleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "admin" => Ok(Role::Admin),
            "user" => Ok(Role::User),
            "none" | "no-access" => Ok(Role::None),
            _ => Err(RoleError(s.to_owned())),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_unknown() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert_eq!("Admin".parse::<Role>(), Ok(Role::Admin));
        assert_eq!(
            "owner".parse::<Role>().unwrap_err().to_string(),
            "unknown role \"owner\": use admin, user or none"
        );
        assert!(!Role::None.grants_access());
        assert!(Role::User.grants_access());
    }
}
