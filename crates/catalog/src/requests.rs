//! The rules for an admin's install request, shared by the command line, the API and the
//! Dashboard so that all three refuse the same things with the same words.

use crate::entry::is_dns_label;
use crate::{Catalog, Entry};

/// Why an install request was refused; the text is shown to the admin as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("{0:?} is not in the catalog (see `stackspin app catalog`)")]
    UnknownApp(String),
    #[error("{0}")]
    Refused(String),
}

/// An app already asked for: its name and the subdomain it was given (`None`: the catalog's).
#[derive(Debug, Clone)]
pub struct Taken<'a> {
    pub name: &'a str,
    pub subdomain: Option<&'a str>,
}

/// A checked install request: what to store.
#[derive(Debug, Clone)]
pub struct Install<'a> {
    pub entry: &'a Entry,
    /// `None`: the catalog's default; `Some("")`: the bare domain.
    pub subdomain: Option<String>,
    /// The version installed first: the catalog's, which its tests were run against.
    pub version: String,
}

/// The host label an app ends up on: its own choice, else the catalog's.
pub fn effective_subdomain<'a>(entry: &'a Entry, chosen: Option<&'a str>) -> &'a str {
    chosen.unwrap_or(&entry.subdomain)
}

/// Checks that `name` is installable and that the subdomain is a DNS label no other app (nor
/// the Dashboard) uses. Installing an app that is already asked for is allowed: it changes its
/// subdomain.
pub fn check_install<'a>(
    catalog: &'a Catalog,
    name: &str,
    subdomain: Option<&str>,
    taken: &[Taken<'_>],
) -> Result<Install<'a>, RequestError> {
    let entry = catalog
        .installable()
        .find(|e| e.name == name)
        .ok_or_else(|| match catalog.get(name) {
            Some(e) if e.part_of.is_some() => RequestError::Refused(format!(
                "{name} is installed with {}; install that instead",
                e.part_of.as_deref().unwrap_or_default()
            )),
            Some(_) => RequestError::Refused(format!(
                "{name} is part of the platform and always installed"
            )),
            None => RequestError::UnknownApp(name.to_string()),
        })?;
    let subdomain = subdomain.map(|s| s.trim().to_ascii_lowercase());
    if let Some(s) = subdomain.as_deref() {
        if s.is_empty() && !entry.root_domain_allowed {
            return Err(RequestError::Refused(format!(
                "{name} cannot be on the bare domain; give it a subdomain"
            )));
        }
        if !s.is_empty() && !is_dns_label(s) {
            return Err(RequestError::Refused(format!(
                "subdomain {s:?} must be a DNS label: a-z, 0-9 and '-', at most 63"
            )));
        }
    }
    let wanted = effective_subdomain(entry, subdomain.as_deref());
    // Core entries without a host (cert-manager) have an empty subdomain; that is no claim.
    if let Some(core) = catalog
        .core()
        .find(|e| !e.subdomain.is_empty() && e.subdomain == wanted)
    {
        return Err(RequestError::Refused(format!(
            "subdomain {wanted:?} is used by {}",
            core.title
        )));
    }
    for other in taken.iter().filter(|t| t.name != name) {
        let Some(o) = catalog.get(other.name) else {
            continue;
        };
        if effective_subdomain(o, other.subdomain) == wanted {
            return Err(RequestError::Refused(format!(
                "subdomain {wanted:?} is used by {}",
                o.title
            )));
        }
    }
    Ok(Install {
        entry,
        subdomain,
        version: entry.chart.version.to_string(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn catalog() -> &'static Catalog {
        Catalog::builtin().unwrap()
    }

    #[test]
    fn an_app_gets_its_default_subdomain_and_the_catalog_version() {
        let i = check_install(catalog(), "wekan", None, &[]).unwrap();
        assert_eq!(i.entry.name, "wekan");
        assert_eq!(i.subdomain, None);
        assert_eq!(i.version, i.entry.chart.version.to_string());
        let i = check_install(catalog(), "wekan", Some(" Boards "), &[]).unwrap();
        assert_eq!(i.subdomain.as_deref(), Some("boards"));
    }

    #[test]
    fn unknown_core_and_part_apps_are_refused_with_a_reason() {
        let e = check_install(catalog(), "nope", None, &[]).unwrap_err();
        assert!(e.to_string().contains("not in the catalog"), "{e}");
        let e = check_install(catalog(), "cert-manager", None, &[]).unwrap_err();
        assert!(e.to_string().contains("always installed"), "{e}");
        let e = check_install(catalog(), "loki", None, &[]).unwrap_err();
        assert!(e.to_string().contains("install that instead"), "{e}");
    }

    #[test]
    fn subdomains_are_labels_and_not_shared() {
        let e = check_install(catalog(), "wekan", Some("a.b"), &[]).unwrap_err();
        assert!(e.to_string().contains("DNS label"), "{e}");
        let e = check_install(catalog(), "wekan", Some("dashboard"), &[]).unwrap_err();
        assert!(e.to_string().contains("used by"), "{e}");
        let hedgedoc = catalog().get("hedgedoc").unwrap();
        let taken = [Taken {
            name: "hedgedoc",
            subdomain: None,
        }];
        let e = check_install(catalog(), "wekan", Some(&hedgedoc.subdomain), &taken).unwrap_err();
        assert!(e.to_string().contains("used by"), "{e}");
        // Its own earlier choice is not a clash.
        let mine = [Taken {
            name: "wekan",
            subdomain: Some("boards"),
        }];
        check_install(catalog(), "wekan", Some("boards"), &mine).unwrap();
    }

    #[test]
    fn only_some_apps_may_take_the_bare_domain() {
        check_install(catalog(), "wordpress", Some(""), &[]).unwrap();
        let e = check_install(catalog(), "wekan", Some(""), &[]).unwrap_err();
        assert!(e.to_string().contains("bare domain"), "{e}");
    }
}
