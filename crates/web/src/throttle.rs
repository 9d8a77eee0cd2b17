//! Throttling of password, code and reset attempts, counted in the database so that every
//! replica enforces one limit.
//!
//! An attempt is counted *before* the secret is checked, in one atomic statement per key, so
//! a burst of concurrent guesses cannot all slip past a check made before the first of them
//! was recorded. The keys are chosen so that a stranger cannot lock the owner out:
//!
//! - guesses are limited per account *and* client address, so guessing from one address
//!   blocks that address only;
//! - a browser that has signed in to the account before (a known-device cookie) is counted
//!   on its own: the owner's own browser is never blocked by anyone else's guesses;
//! - other browsers share a larger per-account limit that bounds guessing from many
//!   addresses, and a per-address limit bounds spraying many accounts;
//! - reset requests have keys of their own and never count against sign-ins.
//!
//! Keys are SHA-256 digests, so the table holds neither addresses nor IPs. Limits apply to
//! the address *typed*, whether or not an account has it, so the answer ("too many
//! attempts") never reveals which addresses exist.

use std::net::IpAddr;

use stackspin_domain::secret::hash_secret;
use stackspin_storage::{StorageError, Store};

/// Counters reset after this long.
pub const WINDOW_SECS: i64 = 15 * 60;

/// Guesses at one account from one address (or one known browser).
const PER_ACCOUNT_AND_CLIENT: i64 = 10;
/// Guesses at one account from browsers it has never signed in with, all addresses together.
const PER_ACCOUNT: i64 = 100;
/// Sign-in attempts from one address, across accounts.
const PER_CLIENT: i64 = 100;
/// Reset mails for one address, and reset requests from one client.
const RESETS_PER_ACCOUNT: i64 = 5;
const RESETS_PER_CLIENT: i64 = 20;

/// One counter and the most attempts it allows in a window.
#[derive(Clone, Debug)]
pub struct Limit {
    key: String,
    max: i64,
    /// Whether the right secret resets this counter.
    cleared_on_success: bool,
}

impl Limit {
    fn new(parts: &[&str], max: i64) -> Limit {
        Limit {
            key: hash_secret(&parts.join("\u{1f}")),
            max,
            cleared_on_success: true,
        }
    }

    fn kept(mut self) -> Limit {
        self.cleared_on_success = false;
        self
    }
}

fn account(typed: &str) -> String {
    typed.trim().to_lowercase()
}

/// The limits one sign-in attempt counts against. `known_device` is the hash of a
/// known-device cookie that belongs to this account.
pub fn sign_in(typed: &str, client: IpAddr, known_device: Option<&str>) -> Vec<Limit> {
    let acct = account(typed);
    match known_device {
        Some(device) => vec![Limit::new(
            &["login-device", &acct, device],
            PER_ACCOUNT_AND_CLIENT,
        )],
        None => {
            let ip = client.to_string();
            vec![
                Limit::new(&["login-client", &acct, &ip], PER_ACCOUNT_AND_CLIENT),
                Limit::new(&["login-account", &acct], PER_ACCOUNT),
                Limit::new(&["login-ip", &ip], PER_CLIENT).kept(),
            ]
        }
    }
}

/// The limits of a password-reset request.
pub fn reset_request(typed: &str, client: IpAddr) -> Vec<Limit> {
    vec![
        Limit::new(&["reset-account", &account(typed)], RESETS_PER_ACCOUNT),
        Limit::new(&["reset-ip", &client.to_string()], RESETS_PER_CLIENT),
    ]
}

/// The limits of a second-factor code or a current-password check, for someone already
/// past the first factor (`what` names the check).
pub fn signed_in_check(what: &str, user: &str, client: IpAddr) -> Vec<Limit> {
    vec![
        Limit::new(&[what, user, &client.to_string()], PER_ACCOUNT_AND_CLIENT),
        Limit::new(&[what, user], PER_ACCOUNT_AND_CLIENT * 3),
    ]
}

/// Counts one attempt against every limit; `false` when any is over its maximum, in which
/// case the secret must not be checked.
pub async fn attempt(store: &Store, limits: &[Limit]) -> Result<bool, StorageError> {
    let keys: Vec<String> = limits.iter().map(|l| l.key.clone()).collect();
    let counts = store.count_attempts(&keys, WINDOW_SECS).await?;
    Ok(limits.iter().zip(counts).all(|(l, n)| n <= l.max))
}

/// After the right secret: the account's own counters start again, and the attempt is taken
/// back from the others (the per-address counter is not reset, or signing in to one's own
/// account would wipe out a spray of guesses at others; it just counts failures and
/// attempts in flight, so a busy office behind one address is not blocked by its successes).
pub async fn succeeded(store: &Store, limits: &[Limit]) -> Result<(), StorageError> {
    let (cleared, released): (Vec<&Limit>, Vec<&Limit>) =
        limits.iter().partition(|l| l.cleared_on_success);
    let keys = |ls: Vec<&Limit>| ls.into_iter().map(|l| l.key.clone()).collect::<Vec<_>>();
    store.clear_attempts(&keys(cleared)).await?;
    store.release_attempts(&keys(released)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_accounts_clients_and_purposes() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let a = sign_in("Ada@Example.org ", ip, None);
        assert_eq!(a[0].key, sign_in("ada@example.org", ip, None)[0].key);
        assert_ne!(a[0].key, sign_in("ada@example.org", other, None)[0].key);
        assert_eq!(a[1].key, sign_in("ada@example.org", other, None)[1].key);
        let resets = reset_request("ada@example.org", ip);
        assert!(resets.iter().all(|r| a.iter().all(|l| l.key != r.key)));
        let known = sign_in("ada@example.org", ip, Some("d1"));
        assert_eq!(known.len(), 1);
        assert!(a.iter().all(|l| l.key != known[0].key));
        assert_eq!(a.iter().filter(|l| l.cleared_on_success).count(), 2);
    }
}
