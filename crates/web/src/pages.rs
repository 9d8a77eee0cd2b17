//! Server-rendered pages (askama templates compiled into the binary, auto-escaped).

use askama::Template;

use crate::texts;
use axum::{
    http::StatusCode,
    response::{Html, IntoResponse, Response},
};

pub async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        texts::t("msg.pages.page_not_found"),
        texts::t("msg.pages.there_is_nothing_at_this"),
    )
}

#[derive(Template)]
#[template(path = "message.html")]
struct Message<'a> {
    title: &'a str,
    message: &'a str,
    link: Option<(&'a str, &'a str)>,
}

/// "Firefox on Android" rather than a cut User-Agent string.
fn device_name(user_agent: &str) -> String {
    let d = stackspin_domain::device::describe(user_agent);
    match (d.browser, d.system) {
        (Some(b), Some(s)) => texts::tf("account.device_on", [("browser", b), ("system", s)]),
        (Some(b), None) => b.to_owned(),
        (None, Some(s)) => texts::tf("account.device_unknown_on", [("system", s)]),
        (None, None) => texts::t("account.device_unknown").to_owned(),
    }
}

/// The tab icon: Stackspin's blue tile with two stacked bars, drawn here (no image files to
/// ship), cached for a day.
pub async fn favicon() -> Response {
    const SVG: &str = concat!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">"##,
        r##"<rect width="32" height="32" rx="7" fill="#1f5f99"/>"##,
        r##"<rect x="7" y="9" width="18" height="5" rx="2" fill="#fff"/>"##,
        r##"<rect x="7" y="18" width="18" height="5" rx="2" fill="#f5a623"/>"##,
        "</svg>"
    );
    (
        [
            (axum::http::header::CONTENT_TYPE, "image/svg+xml"),
            (axum::http::header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        SVG,
    )
        .into_response()
}

/// A page explaining why a request could not be served, with a way back to where it came
/// from, so it is never a dead end.
pub fn error_back(status: StatusCode, title: &str, message: &str, back: &str) -> Response {
    render(
        status,
        &Message {
            title,
            message,
            link: Some((back, texts::t("common.go_back"))),
        },
    )
}

/// A page explaining why a request could not be served. It links to the start page.
pub fn error(status: StatusCode, title: &str, message: &str) -> Response {
    render(
        status,
        &Message {
            title,
            message,
            link: None,
        },
    )
}

/// A form whose CSRF check failed: stale, or posted from another site.
pub fn form_expired() -> Response {
    error(
        StatusCode::FORBIDDEN,
        texts::t("msg.pages.please_try_again"),
        texts::t("msg.pages.the_form_expired_or_came"),
    )
}

/// A `return_to` no page of ours could have produced (see `stackspin_domain::return_to`).
pub fn malformed_return_to() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        texts::t("msg.pages.link_is_damaged"),
        texts::t("msg.pages.the_return_address_is_malformed"),
    )
}

/// A failure of ours: logged with its cause, shown without it.
pub fn internal_error(e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "request failed");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        texts::t("msg.pages.something_went_wrong"),
        texts::t("msg.pages.the_server_could_not_complete"),
    )
}

/// The friendly refusal for someone whose role in an app is "no access"; the link takes
/// them back to the app with `access_denied`.
pub fn no_access(app: &str, back: &str) -> Response {
    let message = texts::tf("msg.pages.no_access_to_app", [("app", app)]);
    render(
        StatusCode::FORBIDDEN,
        &Message {
            title: texts::t("msg.pages.no_access_to_this_app"),
            message: &message,
            link: Some((back, texts::t("msg.pages.return_to_the_app"))),
        },
    )
}

pub fn logged_out() -> Response {
    render(
        StatusCode::OK,
        &Message {
            title: texts::t("msg.pages.you_are_logged_out"),
            message: texts::t("msg.pages.you_have_been_logged_out"),
            link: Some(("/", texts::t("msg.pages.log_in_again"))),
        },
    )
}

#[derive(Template)]
#[template(path = "logout_confirm.html")]
struct LogoutConfirm<'a> {
    csrf: &'a str,
    email: &'a str,
    hidden: &'a [(String, String)],
}

pub fn logout_confirm(csrf: &str, email: &str, hidden: &[(String, String)]) -> Response {
    render(
        StatusCode::OK,
        &LogoutConfirm {
            csrf,
            email,
            hidden,
        },
    )
}

#[derive(Template)]
#[template(path = "login.html")]
struct Login<'a> {
    csrf: &'a str,
    return_to: &'a str,
    email: &'a str,
    error: Option<&'a str>,
    /// The app the sign-in is for, by its display name.
    asking: Option<&'a str>,
}

pub fn login(
    csrf: &str,
    return_to: &str,
    email: &str,
    error: Option<&str>,
    asking: Option<&str>,
    status: StatusCode,
) -> Response {
    render(
        status,
        &Login {
            csrf,
            return_to,
            email,
            error,
            asking,
        },
    )
}

pub(crate) fn render(status: StatusCode, t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "recover.html")]
struct Recover<'a> {
    csrf: &'a str,
    sent_to: Option<&'a str>,
}

pub fn recover(csrf: &str, sent_to: Option<&str>) -> Response {
    render(StatusCode::OK, &Recover { csrf, sent_to })
}

#[derive(Template)]
#[template(path = "reset.html")]
struct Reset<'a> {
    csrf: &'a str,
    token: &'a str,
    email: &'a str,
    invited: bool,
    error: Option<&'a str>,
}

pub fn reset(
    csrf: &str,
    token: &str,
    email: &str,
    invited: bool,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    render(
        status,
        &Reset {
            csrf,
            token,
            email,
            invited,
            error,
        },
    )
}

pub fn password_set() -> Response {
    render(
        StatusCode::OK,
        &Message {
            title: texts::t("msg.pages.your_password_is_set"),
            message: texts::t("msg.pages.you_can_now_log_in"),
            link: Some(("/login", texts::t("msg.pages.log_in"))),
        },
    )
}

#[derive(Template)]
#[template(path = "mfa_login.html")]
struct MfaLogin<'a> {
    csrf: &'a str,
    error: Option<&'a str>,
}

pub fn mfa_login(csrf: &str, error: Option<&str>, status: StatusCode) -> Response {
    render(status, &MfaLogin { csrf, error })
}

#[derive(Template)]
#[template(path = "mfa_setup.html")]
struct MfaSetup<'a> {
    csrf: &'a str,
    secret: &'a str,
    uri: &'a str,
    return_to: &'a str,
    required: bool,
    error: Option<&'a str>,
    /// The `otpauth://` address as a QR code, inline SVG markup made here from `uri`.
    qr: Option<String>,
}

/// The enrolment address as an inline SVG QR code, so fifty people scan instead of typing a
/// 32-character key. `None` if the address does not fit a QR code (it always does in practice;
/// the key and the link remain on the page).
fn qr_svg(uri: &str) -> Option<String> {
    let code =
        qrcode::QrCode::with_error_correction_level(uri.as_bytes(), qrcode::EcLevel::M).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    // Inline in the page: the XML declaration belongs to files, not to HTML.
    let start = svg.find("<svg")?;
    Some(svg[start..].to_owned())
}

pub fn mfa_setup(
    csrf: &str,
    secret: &str,
    uri: &str,
    return_to: &str,
    required: bool,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    render(
        status,
        &MfaSetup {
            csrf,
            secret,
            uri,
            return_to,
            required,
            error,
            qr: qr_svg(uri),
        },
    )
}

#[derive(Template)]
#[template(path = "mfa_status.html")]
struct MfaStatus<'a> {
    csrf: &'a str,
    codes_left: i64,
    required: bool,
    error: Option<&'a str>,
}

pub fn mfa_status(csrf: &str, codes_left: i64, required: bool, error: Option<&str>) -> Response {
    render(
        StatusCode::OK,
        &MfaStatus {
            csrf,
            codes_left,
            required,
            error,
        },
    )
}

#[derive(Template)]
#[template(path = "recovery_codes.html")]
struct RecoveryCodes<'a> {
    codes: &'a [String],
    return_to: &'a str,
}

pub fn recovery_codes(codes: &[String], return_to: &str) -> Response {
    render(StatusCode::OK, &RecoveryCodes { codes, return_to })
}

impl RecoveryCodes<'_> {
    /// The codes as a text file to save, in a `data:` address (they are on the page already;
    /// a download needs no script and no second request that could be replayed).
    fn download(&self) -> String {
        let mut text = String::from("Stackspin recovery codes\r\n\r\n");
        for c in self.codes {
            text.push_str(c);
            text.push_str("\r\n");
        }
        let encoded: String = url::form_urlencoded::byte_serialize(text.as_bytes())
            .collect::<String>()
            .replace('+', "%20");
        format!("data:text/plain;charset=utf-8,{encoded}")
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct Home<'a> {
    csrf: &'a str,
    user: &'a stackspin_domain::User,
    tiles: &'a [crate::dashboard::Tile],
    steps: Option<&'a [crate::checklist::Step]>,
}

impl Home<'_> {
    fn steps_done(&self) -> usize {
        self.steps
            .map_or(0, |s| s.iter().filter(|s| s.done).count())
    }
}

pub fn home(
    csrf: &str,
    user: &stackspin_domain::User,
    tiles: &[crate::dashboard::Tile],
    steps: Option<&[crate::checklist::Step]>,
) -> Response {
    render(
        StatusCode::OK,
        &Home {
            csrf,
            user,
            tiles,
            steps,
        },
    )
}

/// A session as the account page lists it.
pub struct SessionRow {
    pub sid: String,
    pub started: String,
    pub from: String,
    pub device: String,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
struct Account<'a> {
    csrf: &'a str,
    user: &'a stackspin_domain::User,
    sessions: Vec<SessionRow>,
    mfa: bool,
    notice: Option<(&'a str, bool)>,
}

pub fn account(
    csrf: &str,
    user: &stackspin_domain::User,
    current_sid: &str,
    sessions: &[stackspin_storage::SessionRecord],
    mfa: bool,
    notice: Option<(&str, bool)>,
    status: StatusCode,
) -> Response {
    let sessions = sessions
        .iter()
        .map(|s| SessionRow {
            sid: s.sid.clone(),
            started: s.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            from: s.ip.clone().unwrap_or_default(),
            device: device_name(s.user_agent.as_deref().unwrap_or_default()),
            current: s.sid == current_sid,
        })
        .collect();
    render(
        status,
        &Account {
            csrf,
            user,
            sessions,
            mfa,
            notice,
        },
    )
}

/// What the admin users table shows.
/// A line of the users list.
pub struct UserRow {
    pub user: stackspin_domain::User,
    pub two_step: bool,
    /// "2026-12-04 09:12 UTC", or empty for never.
    pub last_sign_in: String,
    /// The display names of the apps the person may use.
    pub apps: Vec<String>,
}

pub struct UsersView {
    /// (name, display name) of every app, for the batch role change.
    pub apps: Vec<(String, String)>,
    pub query: String,
    pub sort: &'static str,
    pub descending: bool,
    pub page: u32,
    pub pages: u32,
    pub total: u64,
    pub users: Vec<UserRow>,
    pub created: Option<String>,
    /// Added while outgoing mail is off: no invitation went out.
    pub created_no_mail: Option<String>,
    pub deleted: Option<String>,
    pub changed: Option<u32>,
    pub is_admin: bool,
}

impl UsersView {
    /// The link for a column header: sorts by it, flipping the order if it already does.
    pub fn sort_link(&self, column: &str) -> String {
        let order = if self.sort == column && !self.descending {
            "desc"
        } else {
            "asc"
        };
        self.link(column, order, 1)
    }

    pub fn page_link(&self, page: u32) -> String {
        self.link(
            self.sort,
            if self.descending { "desc" } else { "asc" },
            page,
        )
    }

    fn link(&self, sort: &str, order: &str, page: u32) -> String {
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("q", &self.query)
            .append_pair("sort", sort)
            .append_pair("order", order)
            .append_pair("page", &page.to_string())
            .finish();
        format!("/admin/users?{q}")
    }

    /// `aria-sort` for a column header.
    pub fn aria_sort(&self, column: &str) -> &'static str {
        match (self.sort == column, self.descending) {
            (false, _) => "none",
            (true, false) => "ascending",
            (true, true) => "descending",
        }
    }
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct AdminUsers<'a> {
    csrf: &'a str,
    v: &'a UsersView,
}

pub fn admin_users(csrf: &str, v: &UsersView) -> Response {
    render(StatusCode::OK, &AdminUsers { csrf, v })
}

pub struct NewUserView {
    pub name: String,
    pub email: String,
    pub is_admin: bool,
    /// (app name, display name, chosen role)
    pub apps: Vec<(String, String, String)>,
    pub error_name: Option<String>,
    pub error_email: Option<String>,
    pub error_roles: Option<String>,
}

#[derive(Template)]
#[template(path = "admin_new_user.html")]
struct AdminNewUser<'a> {
    csrf: &'a str,
    v: &'a NewUserView,
}

pub fn admin_new_user(csrf: &str, v: &NewUserView, status: StatusCode) -> Response {
    render(status, &AdminNewUser { csrf, v })
}

pub struct EditUserView {
    pub id: String,
    pub name: String,
    pub email: String,
    pub is_admin: bool,
    pub version: String,
    pub apps: Vec<(String, String, String)>,
    pub error_name: Option<String>,
    pub error_email: Option<String>,
    pub notice: Option<(String, bool)>,
    /// Whether they chose a password (a reset) or not yet (an invitation).
    pub has_password: bool,
    /// Whether outgoing mail is set up.
    pub mail_on: bool,
    /// What became of the last mail to them, and whether that is good news.
    pub last_mail: Option<(String, bool)>,
}

#[derive(Template)]
#[template(path = "admin_edit_user.html")]
struct AdminEditUser<'a> {
    csrf: &'a str,
    v: &'a EditUserView,
}

pub fn admin_edit_user(csrf: &str, v: &EditUserView, status: StatusCode) -> Response {
    render(status, &AdminEditUser { csrf, v })
}

#[derive(Template)]
#[template(path = "handover_link.html")]
struct HandoverLink<'a> {
    csrf: &'a str,
    user: &'a stackspin_domain::User,
    invite: bool,
    link: &'a str,
    expires: &'a str,
}

/// A single-use invitation or reset link, shown once for the admin to hand over.
pub fn handover_link(
    csrf: &str,
    user: &stackspin_domain::User,
    invite: bool,
    link: &str,
    expires: &str,
) -> Response {
    render(
        StatusCode::OK,
        &HandoverLink {
            csrf,
            user,
            invite,
            link,
            expires,
        },
    )
}

#[derive(Template)]
#[template(path = "confirm.html")]
struct Confirm<'a> {
    csrf: &'a str,
    title: &'a str,
    question: &'a str,
    action: &'a str,
    button: &'a str,
    cancel: &'a str,
}

/// "Are you sure?" for destructive actions that cannot be undone (deleting a person or an
/// app, replacing a secret): a red button, and a form that POSTs to `action`.
pub fn confirm(
    csrf: &str,
    title: &str,
    question: &str,
    action: &str,
    button: &str,
    cancel: &str,
) -> Response {
    render(
        StatusCode::OK,
        &Confirm {
            csrf,
            title,
            question,
            action,
            button,
            cancel,
        },
    )
}

pub struct AuditView {
    pub filters: Vec<(&'static str, String)>,
    pub events: Vec<stackspin_storage::AuditEvent>,
    pub page: u32,
    pub more: bool,
}

impl AuditView {
    pub fn filter(&self, key: &str) -> &str {
        self.filters
            .iter()
            .find(|(k, _)| *k == key)
            .map_or("", |(_, v)| v.as_str())
    }

    pub fn page_link(&self, page: u32) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.filters {
            q.append_pair(k, v);
        }
        q.append_pair("page", &page.to_string());
        format!("/admin/audit?{}", q.finish())
    }
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AdminAudit<'a> {
    csrf: &'a str,
    v: &'a AuditView,
}

pub fn admin_audit(csrf: &str, v: &AuditView) -> Response {
    render(StatusCode::OK, &AdminAudit { csrf, v })
}

pub struct SettingsView {
    /// The organisation's name, or empty.
    pub org_name: String,
    pub logo_url: Option<String>,
    pub policy: String,
    /// "host:port (security)" when mail is configured.
    pub mail: Option<String>,
    pub admin_email: String,
    pub notice: Option<(String, bool)>,
}

#[derive(Template)]
#[template(path = "admin_settings.html")]
struct AdminSettings<'a> {
    csrf: &'a str,
    v: &'a SettingsView,
}

pub fn admin_settings(csrf: &str, v: &SettingsView) -> Response {
    render(StatusCode::OK, &AdminSettings { csrf, v })
}

#[derive(Template)]
#[template(path = "admin_apps.html")]
struct AdminApps<'a> {
    csrf: &'a str,
    apps: &'a [AppRow],
}

/// A registered app with how it is doing.
pub struct AppRow {
    pub app: stackspin_domain::App,
    pub status: stackspin_storage::AppStatus,
}

impl AppRow {
    /// "3 signed in, last at 2026-11-21 10:04 UTC" or "Nobody signed in".
    pub fn activity(&self) -> String {
        match (self.status.signed_in, self.status.last_sign_in) {
            (0, _) | (_, None) => texts::t("msg.pages.nobody_signed_in").to_owned(),
            (n, Some(at)) => texts::tf(
                "msg.pages.signed_in_latest",
                [
                    ("count", n.to_string()),
                    ("at", at.format("%Y-%m-%d %H:%M UTC").to_string()),
                ],
            ),
        }
    }
}

pub fn admin_apps(csrf: &str, apps: &[AppRow]) -> Response {
    render(StatusCode::OK, &AdminApps { csrf, apps })
}

pub struct AppFormView {
    pub editing: bool,
    pub name: String,
    pub display_name: String,
    pub url: String,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
    pub backchannel_logout_uri: String,
    pub icon_url: String,
    pub public: bool,
    pub default_role: String,
    pub errors: Vec<(&'static str, String)>,
}

impl AppFormView {
    /// The error for one field, shown next to it.
    pub fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, e)| e.as_str())
    }
}

#[derive(Template)]
#[template(path = "admin_app_form.html")]
struct AdminAppForm<'a> {
    csrf: &'a str,
    v: &'a AppFormView,
}

pub fn admin_app_form(csrf: &str, v: &AppFormView, status: StatusCode) -> Response {
    render(status, &AdminAppForm { csrf, v })
}

#[derive(Template)]
#[template(path = "app_credentials.html")]
struct AppCredentials<'a> {
    csrf: &'a str,
    app: &'a stackspin_domain::App,
    secret: Option<&'a str>,
    issuer: &'a str,
}

pub fn app_credentials(
    csrf: &str,
    app: &stackspin_domain::App,
    secret: Option<&str>,
    issuer: &str,
) -> Response {
    let mut resp = render(
        StatusCode::OK,
        &AppCredentials {
            csrf,
            app,
            secret,
            issuer,
        },
    );
    // A page with a secret must not be kept in any cache.
    resp.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    resp
}

pub struct AccessRow {
    pub id: String,
    pub name: String,
    pub email: String,
    /// The role in each app, in the order of `AccessView::apps`.
    pub cells: Vec<String>,
}

pub struct AccessView {
    /// (name, display name, default role)
    pub apps: Vec<(String, String, String)>,
    pub rows: Vec<AccessRow>,
    pub page: u32,
    pub pages: u32,
    pub notice: Option<(String, bool)>,
}

impl AccessView {
    pub fn app_name(&self, i: &usize) -> &str {
        self.apps.get(*i).map_or("", |a| a.0.as_str())
    }

    pub fn app_label(&self, i: &usize) -> &str {
        self.apps.get(*i).map_or("", |a| a.1.as_str())
    }
}

#[derive(Template)]
#[template(path = "admin_access.html")]
struct AdminAccess<'a> {
    csrf: &'a str,
    v: &'a AccessView,
}

pub fn admin_access(csrf: &str, v: &AccessView, status: StatusCode) -> Response {
    render(status, &AdminAccess { csrf, v })
}

#[derive(Template)]
#[template(path = "batch_delete.html")]
struct BatchDelete<'a> {
    csrf: &'a str,
    ids: &'a [String],
    names: &'a [String],
    /// Granting admin in an app (its name and label) rather than deleting.
    grant: Option<(&'a str, &'a str)>,
}

/// Asks before a batch deletes people or makes them admins of an app, listing who.
pub fn batch_confirm(
    csrf: &str,
    ids: &[String],
    names: &[String],
    grant: Option<(&str, &str)>,
) -> Response {
    render(
        StatusCode::OK,
        &BatchDelete {
            csrf,
            ids,
            names,
            grant,
        },
    )
}

#[derive(Template)]
#[template(path = "admin_catalog.html")]
struct AdminCatalog<'a> {
    csrf: &'a str,
    apps: &'a [crate::admin_catalog::CatalogRow],
    /// The cluster's domain; `None`: no cluster is connected.
    cluster: Option<&'a str>,
    how_to_connect: &'a str,
    manifests: &'a str,
}

pub fn admin_catalog(
    csrf: &str,
    apps: &[crate::admin_catalog::CatalogRow],
    cluster: Option<&str>,
    how_to_connect: &str,
    manifests: &str,
) -> Response {
    render(
        StatusCode::OK,
        &AdminCatalog {
            csrf,
            apps,
            cluster,
            how_to_connect,
            manifests,
        },
    )
}

/// A confirmation on the Manage apps page: an install carries the subdomain, an uninstall
/// offers to purge, which needs the app's name typed.
#[derive(Template)]
#[template(path = "catalog_confirm.html")]
pub struct CatalogConfirm<'a> {
    pub csrf: &'a str,
    pub title: &'a str,
    pub question: &'a str,
    pub action: &'a str,
    pub button: &'a str,
    pub subdomain: Option<&'a str>,
    pub purge_name: Option<&'a str>,
}

pub fn catalog_confirm(page: CatalogConfirm<'_>) -> Response {
    render(StatusCode::OK, &page)
}
