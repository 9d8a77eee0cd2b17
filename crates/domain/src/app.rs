//! Registered apps: the OpenID Connect clients people log into through Stackspin.

use chrono::{DateTime, Utc};
use std::{fmt, net::IpAddr};
use url::{Host, Url};
use uuid::Uuid;

use crate::role::Role;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct AppId(pub Uuid);

impl AppId {
    pub fn new_random() -> Self {
        AppId(Uuid::new_v4())
    }
}

/// The OAuth 2.0 `client_id` of an app.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct ClientId(pub String);

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AppError {
    #[error(
        "invalid app name {0:?}: use 1 to 63 lowercase letters, digits and '-', starting with a letter"
    )]
    Name(String),
    #[error("invalid {what} {input:?}: {reason}")]
    Url {
        what: &'static str,
        input: String,
        reason: &'static str,
    },
    #[error("an app needs at least one --redirect-uri")]
    NoRedirectUri,
    #[error("invalid display name: {0}")]
    DisplayName(&'static str),
}

/// An app's short name, used in commands, URLs and role assignments (`nextcloud`, `wiki`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct AppName(String);

impl AppName {
    pub fn parse(input: &str) -> Result<Self, AppError> {
        let s = input.trim();
        let ok = (1..=63).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && !s.ends_with('-')
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(AppName(s.to_owned()))
        } else {
            Err(AppError::Name(input.chars().take(80).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AppName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Parses an absolute URL and applies the rules every URL an app registers shares.
fn parse_app_url(what: &'static str, input: &str, allow_http: bool) -> Result<Url, AppError> {
    let fail = |reason| AppError::Url {
        what,
        input: input.chars().take(200).collect(),
        reason,
    };
    let url = Url::parse(input.trim()).map_err(|_| fail("not an absolute URL"))?;
    if url.fragment().is_some() {
        return Err(fail("it must not contain a #fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(fail("it must not contain credentials"));
    }
    match url.scheme() {
        "https" => {}
        "http" if allow_http || is_loopback_host(&url) => {}
        "http" => return Err(fail("use https (http is only allowed for localhost)")),
        _ => return Err(fail("use an http(s) URL")),
    }
    if url.host().is_none() {
        return Err(fail("it has no host"));
    }
    Ok(url)
}

/// A redirect URI as registered by an app. Matching against the one in a request is exact
/// (the identity provider adds the RFC 8252 loopback port exception).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct RedirectUri(String);

impl RedirectUri {
    /// https anywhere, http only on loopback (RFC 8252 §7.3), or a private-use scheme for
    /// native apps (RFC 8252 §7.1: reverse domain name, so it must contain a dot).
    pub fn parse(input: &str) -> Result<Self, AppError> {
        let trimmed = input.trim();
        if let Some((scheme, _)) = trimmed.split_once(':')
            && scheme.contains('.')
        {
            let url = Url::parse(trimmed).map_err(|_| AppError::Url {
                what: "redirect URI",
                input: trimmed.chars().take(200).collect(),
                reason: "not a valid URI",
            })?;
            if url.fragment().is_some() {
                return Err(AppError::Url {
                    what: "redirect URI",
                    input: trimmed.chars().take(200).collect(),
                    reason: "it must not contain a #fragment",
                });
            }
            return Ok(RedirectUri(url.to_string()));
        }
        parse_app_url("redirect URI", trimmed, false).map(|u| RedirectUri(u.to_string()))
    }

    /// Wraps a value read back from storage, where it was validated on the way in.
    pub fn from_stored(s: String) -> Self {
        RedirectUri(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The image on an app's tile. https only (http on localhost): the Dashboard is served over
/// https and its content security policy allows images from https origins only.
pub fn parse_icon_url(input: &str) -> Result<Url, AppError> {
    parse_app_url("icon URL", input, false)
}

/// An app's own address, where "Launch" takes people.
pub fn parse_app_home(input: &str) -> Result<Url, AppError> {
    parse_app_url("app URL", input, false)
}

/// Where the identity provider POSTs logout tokens. Server-to-server and often inside the
/// cluster, so plain http is allowed.
pub fn parse_backchannel_uri(input: &str) -> Result<Url, AppError> {
    parse_app_url("back-channel logout URI", input, true)
}

/// The algorithm an app wants its ID tokens signed with. RS256 is what apps expect unless
/// they say otherwise (OpenID Connect Core §3.1.3.7); ES256 is smaller and faster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum SigningAlg {
    #[serde(rename = "RS256")]
    Rs256,
    #[serde(rename = "ES256")]
    Es256,
}

impl SigningAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::Rs256 => "RS256",
            SigningAlg::Es256 => "ES256",
        }
    }

    pub fn parse(s: &str) -> Option<SigningAlg> {
        match s.trim() {
            "RS256" => Some(SigningAlg::Rs256),
            "ES256" => Some(SigningAlg::Es256),
            _ => None,
        }
    }
}

/// A registered app.
#[derive(Clone, Debug, serde::Serialize)]
pub struct App {
    pub id: AppId,
    pub name: AppName,
    pub display_name: String,
    pub url: String,
    pub client_id: ClientId,
    /// SHA-256 of the client secret; `None` for public clients (native and browser apps that
    /// cannot keep a secret and must use PKCE instead).
    #[serde(skip)]
    pub client_secret_hash: Option<String>,
    pub redirect_uris: Vec<RedirectUri>,
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    pub backchannel_logout_uri: Option<String>,
    /// An image shown on the app's tile; without one the tile shows the name's initial.
    pub icon_url: Option<String>,
    /// The role of people who have no explicit role in this app.
    pub default_role: Role,
    pub id_token_alg: SigningAlg,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl App {
    pub fn is_public(&self) -> bool {
        self.client_secret_hash.is_none()
    }
}

/// What an admin provides to register an external app.
#[derive(Clone, Debug)]
pub struct NewApp {
    pub name: AppName,
    pub display_name: String,
    pub url: Url,
    pub redirect_uris: Vec<RedirectUri>,
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    pub backchannel_logout_uri: Option<Url>,
    pub icon_url: Option<Url>,
    pub public: bool,
    pub default_role: Role,
    pub id_token_alg: SigningAlg,
}

impl NewApp {
    /// Checks the fields together; each one has already been parsed on its own.
    pub fn validate(self) -> Result<Self, AppError> {
        if self.redirect_uris.is_empty() {
            return Err(AppError::NoRedirectUri);
        }
        let d = self.display_name.trim();
        if d.is_empty() || d.chars().count() > 100 || d.chars().any(char::is_control) {
            return Err(AppError::DisplayName(
                "use 1 to 100 characters without control characters",
            ));
        }
        Ok(self)
    }
}

/// An app registration as typed (CLI flags, API body, Dashboard form), before checking.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct AppInput {
    pub name: String,
    pub display_name: Option<String>,
    pub url: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub backchannel_logout_uri: Option<String>,
    pub icon_url: Option<String>,
    pub public: bool,
    pub default_role: Option<String>,
    pub id_token_alg: Option<String>,
}

impl AppInput {
    /// Checks every field and returns all problems, each with the field it belongs to.
    pub fn validate(&self) -> Result<NewApp, Vec<(&'static str, String)>> {
        let mut errors = vec![];
        let mut field = |name: &'static str, r: Result<(), String>| {
            if let Err(e) = r {
                errors.push((name, e));
            }
        };
        let name = AppName::parse(&self.name);
        field(
            "name",
            name.as_ref().map(|_| ()).map_err(ToString::to_string),
        );
        let url = parse_app_home(&self.url);
        field("url", url.as_ref().map(|_| ()).map_err(ToString::to_string));
        let parse_all = |list: &[String]| -> Result<Vec<RedirectUri>, String> {
            list.iter()
                .map(|u| RedirectUri::parse(u).map_err(|e| e.to_string()))
                .collect()
        };
        let redirects = parse_all(&self.redirect_uris);
        field(
            "redirect_uris",
            redirects.as_ref().map(|_| ()).map_err(Clone::clone),
        );
        let post_logout = parse_all(&self.post_logout_redirect_uris);
        field(
            "post_logout_redirect_uris",
            post_logout.as_ref().map(|_| ()).map_err(Clone::clone),
        );
        let backchannel = self
            .backchannel_logout_uri
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .map(parse_backchannel_uri)
            .transpose();
        field(
            "backchannel_logout_uri",
            backchannel
                .as_ref()
                .map(|_| ())
                .map_err(ToString::to_string),
        );
        let icon = self
            .icon_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .map(parse_icon_url)
            .transpose();
        field(
            "icon_url",
            icon.as_ref().map(|_| ()).map_err(ToString::to_string),
        );
        let role = self
            .default_role
            .as_deref()
            .unwrap_or("user")
            .parse::<Role>();
        field(
            "default_role",
            role.as_ref().map(|_| ()).map_err(ToString::to_string),
        );
        let alg_s = self.id_token_alg.as_deref().unwrap_or("RS256");
        let alg = SigningAlg::parse(alg_s)
            .ok_or_else(|| format!("unknown ID token algorithm {alg_s:?}: use RS256 or ES256"));
        field(
            "id_token_alg",
            alg.as_ref().map(|_| ()).map_err(Clone::clone),
        );
        let (
            Ok(name),
            Ok(url),
            Ok(redirect_uris),
            Ok(post_logout_redirect_uris),
            Ok(backchannel_logout_uri),
            Ok(icon_url),
            Ok(default_role),
            Ok(id_token_alg),
        ) = (
            name,
            url,
            redirects,
            post_logout,
            backchannel,
            icon,
            role,
            alg,
        )
        else {
            return Err(errors);
        };
        NewApp {
            display_name: self
                .display_name
                .clone()
                .filter(|d| !d.trim().is_empty())
                .unwrap_or_else(|| name.to_string()),
            name,
            url,
            redirect_uris,
            post_logout_redirect_uris,
            backchannel_logout_uri,
            icon_url,
            public: self.public,
            default_role,
            id_token_alg,
        }
        .validate()
        .map_err(|e| {
            let field = match e {
                AppError::NoRedirectUri => "redirect_uris",
                _ => "display_name",
            };
            vec![(field, e.to_string())]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_reports_every_bad_field() {
        let errors = AppInput {
            name: "Bad Name".into(),
            url: "nope".into(),
            redirect_uris: vec!["http://x.example.org/cb".into()],
            default_role: Some("owner".into()),
            icon_url: Some("http://x.example.org/icon.png".into()),
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|(f, _)| *f).collect();
        assert_eq!(
            fields,
            ["name", "url", "redirect_uris", "icon_url", "default_role"]
        );
        let ok = AppInput {
            name: "wiki".into(),
            url: "https://wiki.example.org".into(),
            redirect_uris: vec!["https://wiki.example.org/cb".into()],
            ..Default::default()
        }
        .validate()
        .unwrap();
        assert_eq!(ok.display_name, "wiki");
        assert_eq!(ok.id_token_alg, SigningAlg::Rs256);
        assert_eq!(ok.icon_url, None);
    }

    #[test]
    fn app_names() {
        assert!(AppName::parse("nextcloud").is_ok());
        assert!(AppName::parse("my-wiki2").is_ok());
        for bad in ["", "My App", "-x", "x-", "2fa", "wiki_", &"a".repeat(64)] {
            assert!(AppName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn redirect_uri_rules() {
        assert!(RedirectUri::parse("https://wiki.example.org/cb?x=1").is_ok());
        assert!(RedirectUri::parse("http://127.0.0.1:9000/cb").is_ok());
        assert!(RedirectUri::parse("http://localhost/cb").is_ok());
        assert!(RedirectUri::parse("http://[::1]:9/cb").is_ok());
        assert!(RedirectUri::parse("org.example.app:/oauth2redirect").is_ok());
        let err = RedirectUri::parse("http://wiki.example.org/cb").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid redirect URI \"http://wiki.example.org/cb\": use https (http is only allowed for localhost)"
        );
        assert!(RedirectUri::parse("https://x.org/cb#frag").is_err());
        assert!(RedirectUri::parse("/relative").is_err());
        assert!(RedirectUri::parse("https://user:pw@x.org/cb").is_err());
        assert!(RedirectUri::parse("javascript:alert(1)").is_err());
    }

    #[test]
    fn backchannel_allows_cluster_http() {
        assert!(parse_backchannel_uri("http://wiki.stackspin.svc:8080/logout").is_ok());
        assert!(parse_backchannel_uri("ftp://x.org/").is_err());
    }
}
