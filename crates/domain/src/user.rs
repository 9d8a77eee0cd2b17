//! People with an account on the platform.

use chrono::{DateTime, Utc};
use std::fmt;
use uuid::Uuid;

use crate::{email::Email, password::PasswordHash};

/// A user's stable identifier; also the OpenID Connect `sub` claim, so it never changes,
/// even when the e-mail address does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct UserId(pub Uuid);

impl UserId {
    pub fn new_random() -> Self {
        UserId(Uuid::new_v4())
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid name: {}", .0.reason())]
pub struct UserNameError(NameProblem);

/// What is wrong with a name, for pages that say it in their own words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameProblem {
    Empty,
    TooLong,
    ControlCharacters,
}

impl NameProblem {
    pub fn reason(self) -> &'static str {
        match self {
            NameProblem::Empty => "it is empty",
            NameProblem::TooLong => "it is longer than 200 characters",
            NameProblem::ControlCharacters => "it contains control characters",
        }
    }
}

impl UserNameError {
    pub fn problem(&self) -> NameProblem {
        self.0
    }
}

/// A person's display name.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct UserName(String);

impl UserName {
    pub fn parse(input: &str) -> Result<Self, UserNameError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(UserNameError(NameProblem::Empty));
        }
        if s.chars().count() > 200 {
            return Err(UserNameError(NameProblem::TooLong));
        }
        if s.chars().any(char::is_control) {
            return Err(UserNameError(NameProblem::ControlCharacters));
        }
        Ok(UserName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A stored user. The password hash is deliberately not serialisable: nothing that prints or
/// returns a user can leak it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub name: UserName,
    #[serde(skip)]
    pub password_hash: Option<PasswordHash>,
    pub is_admin: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl User {
    /// A user without a password cannot log in yet: they were added by an admin and will set
    /// one through their invitation.
    pub fn has_password(&self) -> bool {
        self.password_hash.is_some()
    }
}

/// What it takes to create a user.
#[derive(Clone, Debug)]
pub struct NewUser {
    pub email: Email,
    pub name: UserName,
    pub password_hash: Option<PasswordHash>,
    pub is_admin: bool,
}

/// A key that sorts text the way people read it: case-insensitive, and with numbers by value,
/// so "user2" comes before "user10". Each run of digits is padded to 20 places (a u64's
/// width); longer runs keep their length and still sort after shorter ones.
pub fn natural_key(text: &str) -> String {
    let lower = text.to_lowercase();
    let mut key = String::with_capacity(lower.len() + 16);
    let mut digits = String::new();
    let flush = |digits: &mut String, key: &mut String| {
        if digits.is_empty() {
            return;
        }
        let trimmed = digits.trim_start_matches('0');
        let value = if trimmed.is_empty() { "0" } else { trimmed };
        for _ in value.len()..20 {
            key.push('0');
        }
        key.push_str(value);
        digits.clear();
    };
    for c in lower.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut digits, &mut key);
            key.push(c);
        }
    }
    flush(&mut digits, &mut key);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_keys_sort_numbers_by_value() {
        let mut names = vec!["user10", "User2", "user1", "user02b", "alice", "user100"];
        names.sort_by_key(|n| natural_key(n));
        assert_eq!(
            names,
            vec!["alice", "user1", "User2", "user02b", "user10", "user100"]
        );
        assert_eq!(natural_key("a007"), natural_key("A7"));
    }

    #[test]
    fn names_are_trimmed_and_checked() {
        assert_eq!(UserName::parse("  Ada  ").unwrap().as_str(), "Ada");
        assert!(UserName::parse("   ").is_err());
        assert!(UserName::parse("a\u{7}b").is_err());
        assert!(UserName::parse(&"x".repeat(201)).is_err());
    }
}
