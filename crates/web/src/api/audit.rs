//! `/api/v1/audit`: the audit log, filtered by user, app, kind and time.

use axum::{Json, extract::State};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use stackspin_storage::AuditFilter;

use super::{Admin, ApiError};
use crate::AppState;

#[derive(Deserialize)]
pub struct AuditQuery {
    user: Option<String>,
    app: Option<String>,
    kind: Option<String>,
    since: Option<String>,
    until: Option<String>,
    page: Option<u32>,
    per_page: Option<u32>,
}

/// An optional time: absent is no bound, but present must be a time (an empty `until=` is
/// not "no bound", it is a mistake worth naming).
fn time(field: &'static str, v: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    v.map(|v| {
        DateTime::parse_from_rfc3339(v)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                ApiError::invalid(vec![(
                    field,
                    "use an RFC 3339 time such as 2026-11-21T00:00:00Z".into(),
                )])
            })
    })
    .transpose()
}

pub async fn list(
    State(state): State<AppState>,
    _admin: Admin,
    super::extract::ApiQuery(q): super::extract::ApiQuery<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let (page, per_page) = super::extract::paging(q.page, q.per_page)?;
    let events = state
        .store
        .audit_events(&AuditFilter {
            user_email: q.user.filter(|s| !s.is_empty()),
            app: q.app.filter(|s| !s.is_empty()),
            kind: q.kind.filter(|s| !s.is_empty()),
            since: time("since", q.since.as_deref())?,
            until: time("until", q.until.as_deref())?,
            limit: i64::from(per_page),
            offset: i64::from(page - 1) * i64::from(per_page),
        })
        .await?;
    Ok(Json(
        json!({ "events": events, "page": page, "per_page": per_page }),
    ))
}
