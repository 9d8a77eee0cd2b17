//! When the operator moves an app to a newer chart version. Flux has no maintenance window,
//! so the HelmRelease asks for an exact version and only this rule changes it.

use semver::Version;
use stackspin_storage::AppState;

/// What the operator knows about one app when it decides.
#[derive(Debug, Clone)]
pub struct UpdateInput<'a> {
    pub target: &'a Version,
    /// The newest version inside the catalog's range, as the update probe resolved it.
    pub latest: Option<&'a Version>,
    pub auto_update: bool,
    /// An admin asked for the pending update now (`stackspin app update`).
    pub update_now: bool,
    pub in_window: bool,
    pub state: AppState,
}

/// The version to ask for next, if it changes.
pub fn next_version(i: &UpdateInput<'_>) -> Option<Version> {
    let latest = i.latest.filter(|l| *l > i.target)?;
    // Never start an update on top of an install that has not settled, unless asked to: a
    // newer version may be the fix for a failed one, and an admin can say so.
    let settled = matches!(
        i.state,
        AppState::Ready | AppState::UpdatePending | AppState::RolledBack
    );
    let allowed = i.update_now || (i.auto_update && i.in_window && settled);
    allowed.then(|| latest.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).expect("version")
    }

    #[test]
    fn updates_wait_for_the_window_unless_asked() {
        let (t, l) = (v("1.0.0"), v("1.1.0"));
        let base = UpdateInput {
            target: &t,
            latest: Some(&l),
            auto_update: true,
            update_now: false,
            in_window: false,
            state: AppState::UpdatePending,
        };
        assert_eq!(next_version(&base), None, "outside the window");
        assert_eq!(
            next_version(&UpdateInput {
                in_window: true,
                ..base.clone()
            }),
            Some(l.clone())
        );
        assert_eq!(
            next_version(&UpdateInput {
                in_window: true,
                auto_update: false,
                ..base.clone()
            }),
            None,
            "pinned"
        );
        assert_eq!(
            next_version(&UpdateInput {
                auto_update: false,
                update_now: true,
                ..base.clone()
            }),
            Some(l.clone()),
            "asked for now"
        );
        assert_eq!(
            next_version(&UpdateInput {
                in_window: true,
                state: AppState::Installing,
                ..base.clone()
            }),
            None,
            "not on top of an unsettled install"
        );
    }

    #[test]
    fn never_backwards_and_a_failed_version_is_not_retried() {
        let (t, l) = (v("1.1.0"), v("1.0.0"));
        let i = UpdateInput {
            target: &t,
            latest: Some(&l),
            auto_update: true,
            update_now: true,
            in_window: true,
            state: AppState::Ready,
        };
        assert_eq!(next_version(&i), None);
        // After a rollback the target is the version that failed; the same one is not newer.
        let same = UpdateInput {
            latest: Some(&t),
            state: AppState::RolledBack,
            ..i
        };
        assert_eq!(next_version(&same), None);
    }
}
