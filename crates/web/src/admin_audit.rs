//! The audit log page: events filtered by person, app, kind and dates, newest first, in
//! people's words (`audit_text`).

use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use axum_extra::extract::cookie::CookieJar;
use chrono::Utc;
use serde::Deserialize;

use crate::admin::require_admin;
use crate::{AppState, pages, session};

#[derive(Deserialize, Default)]
pub struct AuditQuery {
    user: Option<String>,
    app: Option<String>,
    kind: Option<String>,
    /// YYYY-MM-DD (UTC), inclusive.
    from: Option<String>,
    to: Option<String>,
    page: Option<u32>,
}

fn day(s: Option<&str>, end: bool) -> Result<Option<chrono::DateTime<Utc>>, String> {
    let Some(s) = s.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let date = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| format!("{s:?} is not a date like 2026-11-21"))?;
    let time = if end {
        date.and_hms_opt(23, 59, 59)
    } else {
        date.and_hms_opt(0, 0, 0)
    };
    Ok(time.map(|t| t.and_utc()))
}

pub async fn audit(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(q): Query<AuditQuery>,
) -> Response {
    if let Err(resp) = require_admin(&state, &jar, "/admin/audit").await {
        return resp;
    }
    let page = q.page.unwrap_or(1).max(1);
    let per_page = 100;
    let (since, until) = match (day(q.from.as_deref(), false), day(q.to.as_deref(), true)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            return pages::error(
                StatusCode::UNPROCESSABLE_ENTITY,
                crate::texts::t("msg.admin.invalid_filter"),
                &e,
            );
        }
    };
    let clean = |s: &Option<String>| {
        s.clone()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let events = match state
        .store
        .audit_events(&stackspin_storage::AuditFilter {
            user_email: clean(&q.user),
            app: clean(&q.app),
            kind: clean(&q.kind),
            since,
            until,
            // One more than a page tells whether there is a next page.
            limit: per_page + 1,
            offset: i64::from(page - 1) * per_page,
        })
        .await
    {
        Ok(e) => e,
        Err(e) => return pages::internal_error(&e),
    };
    let more = events.len() as i64 > per_page;
    let (jar, csrf) = session::csrf_token(&state, jar);
    let filters: Vec<(&str, String)> = [
        ("user", &q.user),
        ("app", &q.app),
        ("kind", &q.kind),
        ("from", &q.from),
        ("to", &q.to),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.clone().unwrap_or_default()))
    .collect();
    let view = pages::AuditView {
        filters,
        events: events.into_iter().take(per_page as usize).collect(),
        page,
        more,
    };
    (jar, pages::admin_audit(&csrf, &view)).into_response()
}
