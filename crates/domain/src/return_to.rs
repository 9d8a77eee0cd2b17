//! Where to send someone after they sign in: only a path on this site.
//!
//! Browsers are generous with `Location`: they drop tabs and newlines anywhere in a URL and
//! read `\` as `/`, so `/\t/evil.example/` and `/\evil.example/` both leave the site as
//! `//evil.example/`. A value is accepted only if it is a plain absolute path, made of
//! visible ASCII, that no such reading turns into another host. Values that could never have
//! come from our own pages (control characters) are malformed input and answered with 400;
//! values that are merely foreign (another site, a relative path) fall back to `/`.

/// Why a `return_to` value was refused outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReturnToError {
    #[error("the address to return to contains control characters")]
    ControlCharacters,
}

/// The local path to go to: `raw` itself when it is safe, `/` when it points elsewhere.
pub fn local_path(raw: &str) -> Result<&str, ReturnToError> {
    if raw.chars().any(|c| c.is_control()) {
        return Err(ReturnToError::ControlCharacters);
    }
    Ok(if is_local(raw) { raw } else { "/" })
}

fn is_local(path: &str) -> bool {
    let bytes = path.as_bytes();
    // Visible ASCII only: a header value must be, and anything else would need encoding
    // that our own links already carry.
    if bytes.first() != Some(&b'/') || !bytes.iter().all(|b| (0x21..0x7f).contains(b)) {
        return false;
    }
    // `\` is `/` to a browser anywhere in the authority, so it is refused everywhere.
    if bytes.contains(&b'\\') || bytes.get(1) == Some(&b'/') {
        return false;
    }
    // The value may be decoded once more on its way (it travels as a query parameter
    // between our pages), so the decoded form must be just as local.
    let decoded: String = url::form_urlencoded::parse(format!("p={path}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    decoded == path
        || (!decoded.chars().any(|c| c.is_control() || c == '\\')
            && !decoded.starts_with("//")
            && decoded.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_pass() {
        for p in [
            "/",
            "/account",
            "/authorize?client_id=x&redirect_uri=https%3A%2F%2Fapp.example%2Fcb",
        ] {
            assert_eq!(local_path(p), Ok(p));
        }
    }

    #[test]
    fn paths_a_browser_reads_as_another_host_fall_back_home() {
        for p in [
            "//evil.example/",
            "/\\evil.example/",
            "\\\\evil.example",
            "/%2F/evil.example/",
            "/%5Cevil.example/",
            "/%09/evil.example/",
            "https://evil.example/",
            "evil.example",
            "/ /evil.example",
            "/é",
            "",
        ] {
            assert_eq!(local_path(p), Ok("/"), "{p:?}");
        }
    }

    #[test]
    fn control_characters_are_malformed() {
        for p in [
            "/\t/evil.example/",
            "/a\nb",
            "/a\r\nSet-Cookie: x=y",
            "/a\0",
            "/a\u{7f}",
        ] {
            assert_eq!(
                local_path(p),
                Err(ReturnToError::ControlCharacters),
                "{p:?}"
            );
        }
    }
}
