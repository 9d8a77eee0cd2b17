//! Which address a request came from, when reverse proxies stand in between.
//!
//! `X-Forwarded-For` is believed only as far as it was written by a proxy the admin listed
//! (`trusted_proxies`): walking the header from the right, each hop added by a trusted proxy
//! is skipped until the first address that is not one; that is the client. Without trusted
//! proxies, or when the peer is not one of them, the header is ignored: anyone can send it.

use std::net::IpAddr;

pub use ipnet::IpNet;

/// Parses `10.0.0.0/8, 192.168.1.5` (addresses or CIDR ranges, comma-separated).
pub fn parse_trusted(list: &str) -> Result<Vec<IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{s} is not an IP address or CIDR range"))
        })
        .collect()
}

/// The client's address: the peer, or what trusted proxies said they forwarded for.
/// `forwarded_for` holds the `X-Forwarded-For` header values in the order received.
pub fn resolve(peer: IpAddr, forwarded_for: &[&str], trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(&canonical(*ip)));
    if !is_trusted(&peer) {
        return canonical(peer);
    }
    let hops: Vec<&str> = forwarded_for
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = canonical(peer);
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = canonical(ip);
                if !is_trusted(&client) {
                    return client;
                }
            }
            // A hop we cannot read: the last address we could trust is as far as we go.
            Err(_) => return client,
        }
    }
    client
}

/// IPv4 clients of a dual-stack socket appear as `::ffff:a.b.c.d`; count them as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peers_are_taken_as_they_are() {
        let trusted = parse_trusted("10.0.0.0/8").unwrap();
        assert_eq!(
            resolve(ip("203.0.113.9"), &["1.2.3.4"], &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(resolve(ip("10.0.0.1"), &["1.2.3.4"], &[]), ip("10.0.0.1"));
    }

    #[test]
    fn trusted_proxies_hops_are_skipped_from_the_right() {
        let trusted = parse_trusted("10.0.0.0/8, 192.168.1.5").unwrap();
        // The client forged the first entry; the proxy appended the real address.
        assert_eq!(
            resolve(ip("10.0.0.1"), &["6.6.6.6, 198.51.100.7"], &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            resolve(ip("10.0.0.1"), &["198.51.100.7", "192.168.1.5"], &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(resolve(ip("10.0.0.1"), &[], &trusted), ip("10.0.0.1"));
        assert_eq!(
            resolve(ip("10.0.0.1"), &["garbage, 10.1.1.1"], &trusted),
            ip("10.1.1.1")
        );
        assert_eq!(
            resolve(ip("::ffff:10.0.0.1"), &["198.51.100.7"], &trusted),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn bad_lists_are_named() {
        assert!(
            parse_trusted("10.0.0.0/8, nonsense")
                .unwrap_err()
                .contains("nonsense")
        );
        assert_eq!(parse_trusted("").unwrap(), vec![]);
    }
}
