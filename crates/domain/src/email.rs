//! E-mail addresses: the login identifier of every person.

use std::fmt;

/// Why a string is not an acceptable e-mail address.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid email address {input:?}: {}", problem.reason())]
pub struct EmailError {
    input: String,
    problem: EmailProblem,
}

/// What is wrong with an address, for pages that say it in their own words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailProblem {
    Empty,
    TooLong,
    NoAt,
    LocalLength,
    LocalCharacters,
    LocalDot,
    DomainNoDot,
    DomainInvalid,
}

impl EmailProblem {
    /// The reason in the error's own (log and CLI) wording.
    pub fn reason(self) -> &'static str {
        match self {
            EmailProblem::Empty => "it is empty",
            EmailProblem::TooLong => "it is longer than 254 characters",
            EmailProblem::NoAt => "it has no '@'",
            EmailProblem::LocalLength => "the part before '@' must be 1 to 64 characters",
            EmailProblem::LocalCharacters => {
                "the part before '@' has characters not allowed in an address"
            }
            EmailProblem::LocalDot => "the part before '@' has a misplaced dot",
            EmailProblem::DomainNoDot => "the domain needs a dot, as in example.org",
            EmailProblem::DomainInvalid => "the domain is not a valid host name",
        }
    }
}

impl EmailError {
    pub fn problem(&self) -> EmailProblem {
        self.problem
    }
}

/// A syntactically valid e-mail address.
///
/// The domain is lower-cased when parsing; the local part keeps its case for display, but
/// uniqueness and lookups are case-insensitive (the storage layer indexes `lower(email)`),
/// because people do not reliably remember how they capitalised their address.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Longest address SMTP can carry (RFC 5321 path limit minus the angle brackets).
    const MAX_LEN: usize = 254;

    pub fn parse(input: &str) -> Result<Self, EmailError> {
        let fail = |problem| EmailError {
            input: input.chars().take(80).collect(),
            problem,
        };
        let s = input.trim();
        if s.is_empty() {
            return Err(fail(EmailProblem::Empty));
        }
        if s.len() > Self::MAX_LEN {
            return Err(fail(EmailProblem::TooLong));
        }
        let (local, domain) = s.rsplit_once('@').ok_or_else(|| fail(EmailProblem::NoAt))?;
        if local.is_empty() || local.len() > 64 {
            return Err(fail(EmailProblem::LocalLength));
        }
        // Printable ASCII only: keeps lower() in both databases consistent and rules out
        // look-alike characters in a login identifier.
        if !local
            .chars()
            .all(|c| c.is_ascii_graphic() && !"@<>()[]\\,;:\"".contains(c))
        {
            return Err(fail(EmailProblem::LocalCharacters));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(fail(EmailProblem::LocalDot));
        }
        let domain = domain.to_ascii_lowercase();
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 {
            return Err(fail(EmailProblem::DomainNoDot));
        }
        for label in &labels {
            let ok = !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(fail(EmailProblem::DomainInvalid));
            }
        }
        Ok(Email(format!("{local}@{domain}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form used for case-insensitive comparison.
    pub fn normalized(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses_and_lowercases_domain() {
        let e = Email::parse("  Ada.Lovelace+x@Example.ORG ").unwrap();
        assert_eq!(e.as_str(), "Ada.Lovelace+x@example.org");
        assert_eq!(e.normalized(), "ada.lovelace+x@example.org");
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "",
            "plain",
            "@example.org",
            "a@",
            "a@localhost",
            "a b@example.org",
            "a@exa mple.org",
            "a@-x.org",
            "a..b@example.org",
            "a@example..org",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let long = format!("{}@example.org", "a".repeat(65));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn error_names_the_input_and_reason() {
        let err = Email::parse("nobody").unwrap_err().to_string();
        assert_eq!(err, "invalid email address \"nobody\": it has no '@'");
    }
}
