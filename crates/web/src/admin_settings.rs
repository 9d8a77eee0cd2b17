//! The Settings page: the organisation's name and logo, the two-step policy, and a test
//! email sent at once so the admin sees the mail server's answer.

use axum::{
    Form,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::cookie::CookieJar;
use chrono::Utc;
use serde::Deserialize;
use stackspin_domain::Email;
use stackspin_storage::AuditEvent;

use crate::admin::require_admin;
use crate::{AppState, pages, session};

#[derive(Deserialize, Default)]
pub struct SettingsQuery {
    org: Option<String>,
}

pub async fn settings(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(q): Query<SettingsQuery>,
) -> Response {
    let notice = match q.org.as_deref() {
        Some("saved") => Some((crate::texts::t("msg.admin.saved").to_owned(), true)),
        Some("unchanged") => Some((
            crate::texts::t("msg.admin.nothing_changed").to_owned(),
            true,
        )),
        _ => None,
    };
    render_settings(&state, jar, notice).await
}

async fn render_settings(
    state: &AppState,
    jar: CookieJar,
    notice: Option<(String, bool)>,
) -> Response {
    let admin = match require_admin(state, &jar, "/admin/settings").await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let policy = match state.store.setting(crate::mfa::SETTING).await {
        Ok(p) => p.unwrap_or_else(|| "none".into()),
        Err(e) => return pages::internal_error(&e),
    };
    let shown = state.brand.get(&state.store).await;
    let (jar, csrf) = session::csrf_token(state, jar);
    let view = pages::SettingsView {
        org_name: shown.name.clone().unwrap_or_default(),
        logo_url: shown.logo_url(),
        policy,
        mail: state.mail_summary.clone(),
        admin_email: admin.email.to_string(),
        notice,
    };
    (jar, pages::admin_settings(&csrf, &view)).into_response()
}

#[derive(Deserialize)]
pub struct MfaForm {
    policy: String,
    #[serde(default)]
    csrf: String,
}

pub async fn set_mfa_policy(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(f): Form<MfaForm>,
) -> Response {
    if !session::csrf_ok(&state, &jar, &headers, &f.csrf) {
        return pages::form_expired();
    }
    let admin = match require_admin(&state, &jar, "/admin/settings").await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    if !["none", "admins", "everyone"].contains(&f.policy.as_str()) {
        return render_settings(
            &state,
            jar,
            Some((
                crate::texts::t("msg.admin.choose_one_of_the_options").into(),
                false,
            )),
        )
        .await;
    }
    if let Err(e) = state
        .store
        .set_setting(crate::mfa::SETTING, &f.policy)
        .await
    {
        return pages::internal_error(&e);
    }
    let mut e = AuditEvent::new("settings.changed");
    e.actor = Some(admin.email.to_string());
    e.detail = serde_json::json!({ "mfa_required": f.policy });
    state.audit(e).await;
    render_settings(
        &state,
        jar,
        Some((
            crate::texts::t("msg.admin.saved_it_applies_at_each").into(),
            true,
        )),
    )
    .await
}

fn unreadable_form() -> Response {
    pages::error_back(
        StatusCode::BAD_REQUEST,
        crate::texts::t("msg.pages.please_try_again"),
        crate::texts::t("msg.admin.form_unreadable"),
        "/admin/settings",
    )
}

/// `POST /admin/settings/organisation` (multipart, for the logo file): the organisation's
/// name, and a new logo or its removal. Nothing is saved unless all of it is valid.
pub async fn save_brand(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    mut form: axum::extract::Multipart,
) -> Response {
    let mut csrf = String::new();
    let mut name = String::new();
    let mut logo: Option<Vec<u8>> = None;
    let mut remove_logo = false;
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(_) => return unreadable_form(),
        };
        let field_name = field.name().unwrap_or_default().to_owned();
        let Ok(data) = field.bytes().await else {
            return unreadable_form();
        };
        match field_name.as_str() {
            "csrf" => csrf = String::from_utf8_lossy(&data).into_owned(),
            "name" => name = String::from_utf8_lossy(&data).into_owned(),
            // A file input with no file chosen still sends an empty part.
            "logo" if !data.is_empty() => logo = Some(data.to_vec()),
            "remove_logo" => remove_logo = true,
            _ => {}
        }
    }
    if !session::csrf_ok(&state, &jar, &headers, &csrf) {
        return pages::form_expired();
    }
    let admin = match require_admin(&state, &jar, "/admin/settings").await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let problem =
        |e: stackspin_domain::brand::BrandError| Some((crate::problems::brand(&e), false));
    let name = match stackspin_domain::brand::OrgName::parse(&name) {
        Ok(n) => n,
        Err(e) => return render_settings(&state, jar, problem(e)).await,
    };
    let logo = match logo.map(stackspin_domain::brand::Logo::parse).transpose() {
        Ok(l) => l,
        Err(e) => return render_settings(&state, jar, problem(e)).await,
    };
    let before = match state.store.brand().await {
        Ok(b) => b,
        Err(e) => return pages::internal_error(&e),
    };
    let mut detail = serde_json::Map::new();
    if before.name != name {
        if let Err(e) = state.store.set_org_name(name.as_ref()).await {
            return pages::internal_error(&e);
        }
        detail.insert(
            "org_name".into(),
            serde_json::json!({
                "from": before.name.as_ref().map(|n| n.as_str()),
                "to": name.as_ref().map(|n| n.as_str()),
            }),
        );
    }
    let logo_change = match (&logo, remove_logo && before.logo.is_some()) {
        (Some(l), _) if before.logo.as_ref() != Some(l) => Some((Some(l), "changed")),
        (None, true) => Some((None, "removed")),
        _ => None,
    };
    if let Some((new_logo, what)) = logo_change {
        if let Err(e) = state.store.set_logo(new_logo).await {
            return pages::internal_error(&e);
        }
        detail.insert("logo".into(), what.into());
    }
    state.brand.forget();
    if !detail.is_empty() {
        let mut e = AuditEvent::new("settings.changed");
        e.actor = Some(admin.email.to_string());
        e.detail = serde_json::Value::Object(detail.clone());
        state.audit(e).await;
    }
    // A redirect rather than a rendered page: the header's brand comes from the request's
    // scope, which still holds the old one.
    let target = if detail.is_empty() {
        "/admin/settings?org=unchanged"
    } else {
        "/admin/settings?org=saved"
    };
    (jar, Redirect::to(target)).into_response()
}

#[derive(Deserialize)]
pub struct TestMailForm {
    to: String,
    #[serde(default)]
    csrf: String,
}

/// Sends a test message now, not through the queue, so the admin sees the SMTP server's
/// answer on the page.
pub async fn send_test_mail(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(f): Form<TestMailForm>,
) -> Response {
    if !session::csrf_ok(&state, &jar, &headers, &f.csrf) {
        return pages::form_expired();
    }
    if let Err(resp) = require_admin(&state, &jar, "/admin/settings").await {
        return resp;
    }
    let notice = match (&state.mailer, Email::parse(&f.to)) {
        (_, Err(e)) => (
            crate::texts::tf("msg.admin.cannot_send", [("error", e)]),
            false,
        ),
        (None, _) => (
            crate::texts::t("msg.admin.outgoing_mail_is_not_configured").into(),
            false,
        ),
        (Some(mailer), Ok(to)) => {
            let org = state.org_name().await;
            let (subject, body) = stackspin_domain::mail::test_message(org.as_deref());
            match mailer
                .send(org.as_deref(), to.as_str(), &subject, &body)
                .await
            {
                Ok(()) => {
                    // Ticks the first-run checklist's mail step.
                    if let Err(e) = state
                        .store
                        .set_setting(crate::checklist::MAIL_TESTED, &Utc::now().to_rfc3339())
                        .await
                    {
                        tracing::warn!(error = %e, "cannot record the successful test mail");
                    }
                    (
                        crate::texts::tf("msg.admin.sent_a_test_email", [("to", to)]),
                        true,
                    )
                }
                Err(e) => (
                    crate::texts::tf("msg.admin.mail_server_refused", [("error", e)]),
                    false,
                ),
            }
        }
    };
    render_settings(&state, jar, Some(notice)).await
}
