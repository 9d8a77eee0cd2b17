//! E-mail addresses: the login identifier of every person.

use std::fmt;

/// Why a string is not an acceptable e-mail address.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid email address {input:?}: {reason}")]
pub struct EmailError {
    input: String,
    reason: &'static str,
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
        let fail = |reason| EmailError {
            input: input.chars().take(80).collect(),
            reason,
        };
        let s = input.trim();
        if s.is_empty() {
            return Err(fail("it is empty"));
        }
        if s.len() > Self::MAX_LEN {
            return Err(fail("it is longer than 254 characters"));
        }
        let (local, domain) = s.rsplit_once('@').ok_or_else(|| fail("it has no '@'"))?;
        if local.is_empty() || local.len() > 64 {
            return Err(fail("the part before '@' must be 1 to 64 characters"));
        }
        // Printable ASCII only: keeps lower() in both databases consistent and rules out
        // look-alike characters in a login identifier.
        if !local
            .chars()
            .all(|c| c.is_ascii_graphic() && !"@<>()[]\\,;:\"".contains(c))
        {
            return Err(fail(
                "the part before '@' has characters not allowed in an address",
            ));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(fail("the part before '@' has a misplaced dot"));
        }
        let domain = domain.to_ascii_lowercase();
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 {
            return Err(fail("the domain needs a dot, as in example.org"));
        }
        for label in &labels {
            let ok = !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(fail("the domain is not a valid host name"));
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
