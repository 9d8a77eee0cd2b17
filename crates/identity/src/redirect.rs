//! Redirect-URI matching: exact, except that a loopback redirect may use any port
//! (RFC 8252 §7.3), because native apps listen on whatever port the OS gives them.

use stackspin_domain::RedirectUri;
use url::{Host, Url};

fn loopback_ip(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Returns the registered URI that `requested` matches, if any.
pub fn find_match<'a>(registered: &'a [RedirectUri], requested: &str) -> Option<&'a RedirectUri> {
    // Normalise the request the way registration normalised the stored value (default port,
    // empty path as "/"), then compare whole strings.
    let req = Url::parse(requested).ok()?;
    let req_s = req.as_str();
    if let Some(exact) = registered.iter().find(|r| r.as_str() == req_s) {
        return Some(exact);
    }
    if req.scheme() != "http" || !loopback_ip(&req) {
        return None;
    }
    registered.iter().find(|r| {
        let Ok(reg) = Url::parse(r.as_str()) else {
            return false;
        };
        reg.scheme() == "http"
            && loopback_ip(&reg)
            && reg.host() == req.host()
            && reg.path() == req.path()
            && reg.query() == req.query()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(list: &[&str]) -> Vec<RedirectUri> {
        list.iter()
            .map(|s| RedirectUri::parse(s).unwrap())
            .collect()
    }

    #[test]
    fn exact_match_only_for_web_apps() {
        let r = reg(&["https://app.example.org/cb", "https://app.example.org"]);
        assert!(find_match(&r, "https://app.example.org/cb").is_some());
        assert!(find_match(&r, "https://app.example.org").is_some());
        assert!(find_match(&r, "https://app.example.org/cb/").is_none());
        assert!(find_match(&r, "https://app.example.org/cb?x=1").is_none());
        assert!(find_match(&r, "https://app.example.org:444/cb").is_none());
        assert!(find_match(&r, "https://evil.example.org/cb").is_none());
        assert!(find_match(&r, "not a url").is_none());
    }

    #[test]
    fn loopback_port_may_vary() {
        let r = reg(&["http://127.0.0.1/cb"]);
        assert!(find_match(&r, "http://127.0.0.1:51234/cb").is_some());
        assert!(find_match(&r, "http://127.0.0.1:51234/other").is_none());
        assert!(find_match(&r, "http://[::1]:51234/cb").is_none());
    }
}
