//! The audit log in people's words: "Signed in" rather than `login.success`, and the details
//! each event already stores ("User → Admin", "organisation name: “A” → “B”") instead of
//! hiding them. Kinds this list does not know yet are shown as stored, never dropped.

use serde_json::Value;
use stackspin_storage::AuditEvent;

use crate::texts;

/// The event's name for people.
pub fn kind(kind: &str) -> &str {
    match kind {
        "api_token.created" => texts::t("audit_kinds.api_token_created"),
        "app.default_role_changed" => texts::t("audit_kinds.app_default_role_changed"),
        "app.install" => texts::t("audit_kinds.app_install"),
        "app.uninstall" => texts::t("audit_kinds.app_uninstall"),
        "app.purge" => texts::t("audit_kinds.app_purge"),
        "app.update" => texts::t("audit_kinds.app_update"),
        "app.pinned" => texts::t("audit_kinds.app_pinned"),
        "app.auto_update_on" => texts::t("audit_kinds.app_auto_update_on"),
        "backup.create" => texts::t("audit_kinds.backup_create"),
        "restore.start" => texts::t("audit_kinds.restore_start"),
        "client.registered" => texts::t("audit_kinds.client_registered"),
        "client.removed" => texts::t("audit_kinds.client_removed"),
        "client.secret_rotated" => texts::t("audit_kinds.client_secret_rotated"),
        "client.updated" => texts::t("audit_kinds.client_updated"),
        "invitation.accepted" => texts::t("audit_kinds.invitation_accepted"),
        "invitation.link_created" => texts::t("audit_kinds.invitation_link_created"),
        "invitation.sent" => texts::t("audit_kinds.invitation_sent"),
        "keys.rotated" => texts::t("audit_kinds.keys_rotated"),
        "login.success" => texts::t("audit_kinds.login_success"),
        "login.failure" => texts::t("audit_kinds.login_failure"),
        "login.denied" => texts::t("audit_kinds.login_denied"),
        "login.throttled" => texts::t("audit_kinds.login_throttled"),
        "logout" => texts::t("audit_kinds.logout"),
        "mfa.enrolled" => texts::t("audit_kinds.mfa_enrolled"),
        "mfa.removed" => texts::t("audit_kinds.mfa_removed"),
        "mfa.success" => texts::t("audit_kinds.mfa_success"),
        "mfa.failure" => texts::t("audit_kinds.mfa_failure"),
        "mfa.recovery_code_used" => texts::t("audit_kinds.mfa_recovery_code_used"),
        "mfa.recovery_codes_replaced" => texts::t("audit_kinds.mfa_recovery_codes_replaced"),
        "password.changed" => texts::t("audit_kinds.password_changed"),
        "recovery.requested" => texts::t("audit_kinds.recovery_requested"),
        "recovery.completed" => texts::t("audit_kinds.recovery_completed"),
        "recovery.link_created" => texts::t("audit_kinds.recovery_link_created"),
        "recovery.sent_by_admin" => texts::t("audit_kinds.recovery_sent_by_admin"),
        "role.changed" => texts::t("audit_kinds.role_changed"),
        "settings.changed" => texts::t("audit_kinds.settings_changed"),
        "settings.test_mail" => texts::t("audit_kinds.settings_test_mail"),
        "token.code_replayed" => texts::t("audit_kinds.token_code_replayed"),
        "token.refresh_replayed" => texts::t("audit_kinds.token_refresh_replayed"),
        "user.created" => texts::t("audit_kinds.user_created"),
        "user.deleted" => texts::t("audit_kinds.user_deleted"),
        "user.updated" => texts::t("audit_kinds.user_updated"),
        other => other,
    }
}

/// A role's name as the pages say it.
fn role(v: &Value) -> String {
    match v.as_str() {
        Some("admin") => texts::t("common.admin").to_owned(),
        Some("user") => texts::t("common.user").to_owned(),
        Some("none") => texts::t("common.no_access").to_owned(),
        _ => plain(v),
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::Null => texts::t("audit_details.nothing").to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(plain).collect::<Vec<_>>().join(", "),
        Value::Object(_) => change(v).unwrap_or_else(|| v.to_string()),
        other => other.to_string(),
    }
}

/// "A → B" for a stored change: {previous, role} of roles, {from, to} of anything else.
fn change(v: &Value) -> Option<String> {
    if let (Some(before), Some(after)) = (v.get("previous"), v.get("role")) {
        return Some(format!("{} → {}", role(before), role(after)));
    }
    let (before, after) = (v.get("from")?, v.get("to")?);
    let quote = |x: &Value| match x {
        Value::String(s) => format!("“{s}”"),
        other => plain(other),
    };
    Some(format!("{} → {}", quote(before), quote(after)))
}

fn key_label(key: &str) -> String {
    match key {
        "mfa_required" => texts::t("audit_details.mfa_required").to_owned(),
        "org_name" => texts::t("audit_details.org_name").to_owned(),
        "logo" => texts::t("audit_details.logo").to_owned(),
        "backup" => texts::t("audit_details.backup").to_owned(),
        "restore" => texts::t("audit_details.restore").to_owned(),
        "from" => texts::t("audit_details.from").to_owned(),
        "to" => texts::t("audit_details.to").to_owned(),
        "kids" => texts::t("audit_details.kids").to_owned(),
        "name" => texts::t("audit_details.name").to_owned(),
        "password" => texts::t("common.password").to_owned(),
        other => other.replace('_', " "),
    }
}

/// The event's stored details as one line; empty when it has none.
pub fn details(e: &AuditEvent) -> String {
    let Value::Object(map) = &e.detail else {
        return String::new();
    };
    if map.is_empty() {
        return String::new();
    }
    if let Some(line) = change(&e.detail) {
        return line;
    }
    map.iter()
        .map(|(k, v)| {
            let value = match (k.as_str(), v) {
                ("mfa_required", Value::String(s)) => match s.as_str() {
                    "none" => texts::t("audit_details.mfa_none").to_owned(),
                    "admins" => texts::t("audit_details.mfa_admins").to_owned(),
                    "everyone" => texts::t("audit_details.mfa_everyone").to_owned(),
                    other => other.to_owned(),
                },
                _ => plain(v),
            };
            format!("{}: {value}", key_label(k))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind_: &str, detail: Value) -> AuditEvent {
        let mut e = AuditEvent::new(kind_);
        e.detail = detail;
        e
    }

    #[test]
    fn events_read_as_sentences() {
        assert_eq!(kind("login.success"), "Signed in");
        assert_eq!(kind("something.new"), "something.new");
        let e = event(
            "role.changed",
            serde_json::json!({"previous": "user", "role": "admin"}),
        );
        assert_eq!(details(&e), "User → Admin");
        let e = event(
            "settings.changed",
            serde_json::json!({"org_name": {"from": null, "to": "Vrije Radio"}, "logo": "changed"}),
        );
        assert_eq!(
            details(&e),
            "logo: changed; organisation name: nothing → “Vrije Radio”"
        );
        let e = event(
            "settings.changed",
            serde_json::json!({"mfa_required": "everyone"}),
        );
        assert_eq!(details(&e), "two-step verification required for: everyone");
        assert_eq!(details(&event("logout", Value::Null)), "");
    }
}
