//! The organisation's own name and logo, shown on every page and in the mails, so members
//! recognise their organisation's platform rather than a product name.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

/// Long enough for "Stichting Vrije Journalistiek Amsterdam", short enough for a phone's header.
pub const MAX_NAME_CHARS: usize = 60;
/// A logo is shown at 32 px high; anything larger is a mistake, and it is kept in the database.
pub const MAX_LOGO_BYTES: usize = 200 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrandError {
    #[error("the name is longer than {MAX_NAME_CHARS} characters")]
    NameTooLong,
    #[error("the name contains a line break or another control character")]
    NameControl,
    #[error("the logo is larger than {} KB", MAX_LOGO_BYTES / 1024)]
    LogoTooLarge,
    #[error("the logo is not a PNG, JPEG, WebP, GIF or SVG image")]
    LogoFormat,
    #[error("the SVG logo contains a script or embedded content")]
    LogoActive,
}

/// The organisation's name: trimmed, one line, at most [`MAX_NAME_CHARS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgName(String);

impl OrgName {
    /// `Ok(None)` for an empty input: the name is optional, and clearing it is how an
    /// admin goes back to the plain "Stackspin".
    pub fn parse(input: &str) -> Result<Option<OrgName>, BrandError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        if trimmed.chars().any(char::is_control) {
            return Err(BrandError::NameControl);
        }
        if trimmed.chars().count() > MAX_NAME_CHARS {
            return Err(BrandError::NameTooLong);
        }
        Ok(Some(OrgName(trimmed.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoKind {
    Png,
    Jpeg,
    Webp,
    Gif,
    Svg,
}

impl LogoKind {
    pub fn mime(self) -> &'static str {
        match self {
            LogoKind::Png => "image/png",
            LogoKind::Jpeg => "image/jpeg",
            LogoKind::Webp => "image/webp",
            LogoKind::Gif => "image/gif",
            LogoKind::Svg => "image/svg+xml",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            LogoKind::Png => "png",
            LogoKind::Jpeg => "jpeg",
            LogoKind::Webp => "webp",
            LogoKind::Gif => "gif",
            LogoKind::Svg => "svg",
        }
    }

    fn from_tag(tag: &str) -> Option<LogoKind> {
        Some(match tag {
            "png" => LogoKind::Png,
            "jpeg" => LogoKind::Jpeg,
            "webp" => LogoKind::Webp,
            "gif" => LogoKind::Gif,
            "svg" => LogoKind::Svg,
            _ => return None,
        })
    }
}

/// An uploaded logo whose format was recognised from its bytes, never from the file name
/// or the browser's claimed type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logo {
    kind: LogoKind,
    bytes: Vec<u8>,
}

impl Logo {
    pub fn parse(bytes: Vec<u8>) -> Result<Logo, BrandError> {
        if bytes.len() > MAX_LOGO_BYTES {
            return Err(BrandError::LogoTooLarge);
        }
        let kind = sniff(&bytes).ok_or(BrandError::LogoFormat)?;
        if kind == LogoKind::Svg {
            // The logo is served with a sandboxing CSP and shown through <img>, where SVG
            // scripts never run; refusing active content as well means a logo that is opened
            // on its own, saved, or mailed cannot carry any either.
            let text = String::from_utf8_lossy(&bytes).to_ascii_lowercase();
            let active = [
                "<script",
                "<foreignobject",
                "javascript:",
                "<iframe",
                "<embed",
            ]
            .iter()
            .any(|needle| text.contains(needle))
                || has_event_attribute(&text);
            if active {
                return Err(BrandError::LogoActive);
            }
        }
        Ok(Logo { kind, bytes })
    }

    pub fn kind(&self) -> LogoKind {
        self.kind
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// A short fingerprint for the logo's URL, so browsers may cache it for long and still
    /// see a new one at once.
    pub fn version(&self) -> String {
        let digest = Sha256::digest(&self.bytes);
        digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
    }

    /// The text kept in the settings table.
    pub fn to_setting(&self) -> String {
        format!("{}:{}", self.kind.tag(), STANDARD.encode(&self.bytes))
    }

    /// Reads [`Logo::to_setting`]'s text back; `None` when it was damaged.
    pub fn from_setting(text: &str) -> Option<Logo> {
        let (tag, data) = text.split_once(':')?;
        let kind = LogoKind::from_tag(tag)?;
        let bytes = STANDARD.decode(data).ok()?;
        Some(Logo { kind, bytes })
    }
}

fn sniff(bytes: &[u8]) -> Option<LogoKind> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some(LogoKind::Png);
    }
    if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        return Some(LogoKind::Jpeg);
    }
    if bytes.len() > 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return Some(LogoKind::Webp);
    }
    if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        return Some(LogoKind::Gif);
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let text = text.trim_start_matches('\u{feff}').trim_start();
    let lower = text.to_ascii_lowercase();
    let starts_like_xml = lower.starts_with("<svg") || lower.starts_with("<?xml");
    if starts_like_xml && lower.contains("<svg") {
        return Some(LogoKind::Svg);
    }
    None
}

/// Whether an SVG's text has an `on…=` attribute (onload, onclick, …).
fn has_event_attribute(lower: &str) -> bool {
    let bytes = lower.as_bytes();
    lower.match_indices("on").any(|(i, _)| {
        let before_is_space = i > 0 && bytes[i - 1].is_ascii_whitespace();
        let rest = &lower[i + 2..];
        let name_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        before_is_space && name_len > 0 && rest[name_len..].trim_start().starts_with('=')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_optional_and_one_line() {
        assert_eq!(OrgName::parse("   ").unwrap(), None);
        assert_eq!(
            OrgName::parse("  Vrije Radio ").unwrap().unwrap().as_str(),
            "Vrije Radio"
        );
        assert_eq!(OrgName::parse("a\nb"), Err(BrandError::NameControl));
        assert_eq!(
            OrgName::parse(&"x".repeat(MAX_NAME_CHARS + 1)),
            Err(BrandError::NameTooLong)
        );
        // Characters, not bytes: a name in Greek fits as well as one in English.
        assert!(OrgName::parse(&"ω".repeat(MAX_NAME_CHARS)).is_ok());
    }

    #[test]
    fn logos_are_recognised_from_their_bytes() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        assert_eq!(Logo::parse(png).unwrap().kind().mime(), "image/png");
        let svg = br#"<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>"#.to_vec();
        assert_eq!(Logo::parse(svg).unwrap().kind(), LogoKind::Svg);
        assert_eq!(
            Logo::parse(b"GIF89a....".to_vec()).unwrap().kind(),
            LogoKind::Gif
        );
        assert_eq!(
            Logo::parse(b"hello, not an image".to_vec()),
            Err(BrandError::LogoFormat)
        );
        assert_eq!(
            Logo::parse(vec![0xff; MAX_LOGO_BYTES + 1]),
            Err(BrandError::LogoTooLarge)
        );
    }

    #[test]
    fn svg_logos_with_active_content_are_refused() {
        for bad in [
            r#"<svg><script>alert(1)</script></svg>"#,
            r#"<svg onload="alert(1)"></svg>"#,
            r#"<svg><a href="javascript:alert(1)"><rect/></a></svg>"#,
            r#"<svg><foreignObject><p>x</p></foreignObject></svg>"#,
        ] {
            assert_eq!(
                Logo::parse(bad.as_bytes().to_vec()),
                Err(BrandError::LogoActive),
                "{bad}"
            );
        }
        // "on" inside words and attribute values is harmless.
        let fine = r#"<svg><text font-family="Montserrat" id="icon">Union</text></svg>"#;
        assert!(Logo::parse(fine.as_bytes().to_vec()).is_ok());
    }

    #[test]
    fn a_logo_survives_the_settings_table() {
        let logo = Logo::parse(b"GIF89a\x01\x00\x01\x00".to_vec()).unwrap();
        let back = Logo::from_setting(&logo.to_setting()).unwrap();
        assert_eq!(back, logo);
        assert_eq!(back.version().len(), 12);
        assert_eq!(Logo::from_setting("bmp:AAAA"), None);
        assert_eq!(Logo::from_setting("png:!!!"), None);
    }
}
