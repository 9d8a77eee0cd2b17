//! The admin Apps pages: registered apps; register, edit and remove an external app; rotate
//! its client secret. Secrets are shown once, on the page that creates them.

use axum::{
    Form,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;
use stackspin_domain::{
    App, AppName, ClientId,
    app::AppInput,
    secret::{hash_secret, new_client_id, new_client_secret},
};
use stackspin_storage::AuditEvent;

use crate::{
    AppState,
    admin::{CsrfOnly, require_admin},
    pages, session,
};

pub async fn list(State(state): State<AppState>, jar: CookieJar) -> Response {
    if let Err(resp) = require_admin(&state, &jar, "/admin/apps").await {
        return resp;
    }
    let (apps, statuses) =
        match tokio::try_join!(state.store.list_apps(), state.store.app_statuses()) {
            Ok(a) => a,
            Err(e) => return pages::internal_error(&e),
        };
    let rows: Vec<_> = apps
        .into_iter()
        .map(|a| {
            let status = statuses.get(&a.id).cloned().unwrap_or_default();
            pages::AppRow { app: a, status }
        })
        .collect();
    let (jar, csrf) = session::csrf_token(&state, jar);
    (jar, pages::admin_apps(&csrf, &rows)).into_response()
}

/// The app form as typed: URIs one per line.
#[derive(Deserialize, Default, Clone)]
pub struct AppForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    redirect_uris: String,
    #[serde(default)]
    post_logout_redirect_uris: String,
    #[serde(default)]
    backchannel_logout_uri: String,
    #[serde(default)]
    icon_url: String,
    #[serde(default)]
    public: Option<String>,
    #[serde(default)]
    default_role: String,
    #[serde(default)]
    csrf: String,
}

impl AppForm {
    fn lines(s: &str) -> Vec<String> {
        s.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn input(&self) -> AppInput {
        AppInput {
            name: self.name.trim().to_owned(),
            display_name: Some(self.display_name.clone()),
            url: self.url.clone(),
            redirect_uris: Self::lines(&self.redirect_uris),
            post_logout_redirect_uris: Self::lines(&self.post_logout_redirect_uris),
            backchannel_logout_uri: Some(self.backchannel_logout_uri.clone()),
            icon_url: Some(self.icon_url.clone()),
            public: self.public.is_some(),
            default_role: Some(self.default_role.clone()).filter(|r| !r.is_empty()),
            id_token_alg: None,
        }
    }

    fn from_app(a: &App) -> AppForm {
        let join = |u: &[stackspin_domain::RedirectUri]| {
            u.iter().map(|u| u.as_str()).collect::<Vec<_>>().join("\n")
        };
        AppForm {
            name: a.name.to_string(),
            display_name: a.display_name.clone(),
            url: a.url.clone(),
            redirect_uris: join(&a.redirect_uris),
            post_logout_redirect_uris: join(&a.post_logout_redirect_uris),
            backchannel_logout_uri: a.backchannel_logout_uri.clone().unwrap_or_default(),
            icon_url: a.icon_url.clone().unwrap_or_default(),
            public: a.is_public().then(|| "yes".into()),
            default_role: a.default_role.as_str().into(),
            csrf: String::new(),
        }
    }

    fn view(&self, editing: bool, errors: Vec<(&'static str, String)>) -> pages::AppFormView {
        pages::AppFormView {
            editing,
            name: self.name.clone(),
            display_name: self.display_name.clone(),
            url: self.url.clone(),
            redirect_uris: self.redirect_uris.clone(),
            post_logout_redirect_uris: self.post_logout_redirect_uris.clone(),
            backchannel_logout_uri: self.backchannel_logout_uri.clone(),
            icon_url: self.icon_url.clone(),
            public: self.public.is_some(),
            default_role: if self.default_role.is_empty() {
                "user".into()
            } else {
                self.default_role.clone()
            },
            errors,
        }
    }
}

fn form_page(
    state: &AppState,
    jar: CookieJar,
    view: &pages::AppFormView,
    status: StatusCode,
) -> Response {
    let (jar, csrf) = session::csrf_token(state, jar);
    (jar, pages::admin_app_form(&csrf, view, status)).into_response()
}

pub async fn new_form(State(state): State<AppState>, jar: CookieJar) -> Response {
    if let Err(resp) = require_admin(&state, &jar, "/admin/apps").await {
        return resp;
    }
    form_page(
        &state,
        jar,
        &AppForm::default().view(false, vec![]),
        StatusCode::OK,
    )
}

pub async fn create(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(f): Form<AppForm>,
) -> Response {
    if !session::csrf_ok(&state, &jar, &headers, &f.csrf) {
        return pages::form_expired();
    }
    let admin = match require_admin(&state, &jar, "/admin/apps").await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let new = match f.input().validate() {
        Ok(n) => n,
        Err(errors) => {
            return form_page(
                &state,
                jar,
                &f.view(false, errors),
                StatusCode::UNPROCESSABLE_ENTITY,
            );
        }
    };
    let secret = (!new.public).then(new_client_secret);
    let app = match state
        .store
        .create_app(
            &new,
            ClientId(new_client_id()),
            secret.as_deref().map(hash_secret),
        )
        .await
    {
        Ok(a) => a,
        Err(stackspin_storage::StorageError::DuplicateApp(_)) => {
            return form_page(
                &state,
                jar,
                &f.view(
                    false,
                    vec![("name", "an app with this name already exists".into())],
                ),
                StatusCode::CONFLICT,
            );
        }
        Err(e) => return pages::internal_error(&e),
    };
    let mut e = AuditEvent::new("client.registered");
    e.actor = Some(admin.email.to_string());
    e.app = Some(app.name.to_string());
    state.audit(e).await;
    credentials_page(&state, jar, &app, secret.as_deref())
}

/// The one page that shows a client secret.
fn credentials_page(state: &AppState, jar: CookieJar, app: &App, secret: Option<&str>) -> Response {
    let (jar, csrf) = session::csrf_token(state, jar);
    (
        jar,
        pages::app_credentials(&csrf, app, secret, state.public_url.as_str()),
    )
        .into_response()
}

async fn load(state: &AppState, name: &str) -> Result<App, Response> {
    let missing = || {
        pages::error(
            StatusCode::NOT_FOUND,
            crate::texts::t("msg.admin_apps.no_such_app"),
            crate::texts::t("msg.admin_apps.this_app_is_not_registered"),
        )
    };
    let Ok(name) = AppName::parse(name) else {
        return Err(missing());
    };
    match state.store.app_by_name(&name).await {
        Ok(Some(a)) => Ok(a),
        Ok(None) => Err(missing()),
        Err(e) => Err(pages::internal_error(&e)),
    }
}

pub async fn edit_form(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(name): Path<String>,
) -> Response {
    if let Err(resp) = require_admin(&state, &jar, "/admin/apps").await {
        return resp;
    }
    match load(&state, &name).await {
        Ok(app) => form_page(
            &state,
            jar,
            &AppForm::from_app(&app).view(true, vec![]),
            StatusCode::OK,
        ),
        Err(resp) => resp,
    }
}

pub async fn update(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(mut f): Form<AppForm>,
) -> Response {
    if !session::csrf_ok(&state, &jar, &headers, &f.csrf) {
        return pages::form_expired();
    }
    let admin = match require_admin(&state, &jar, "/admin/apps").await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let app = match load(&state, &name).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    // The name and the client type are fixed once registered.
    f.name = app.name.to_string();
    f.public = app.is_public().then(|| "yes".into());
    let new = match f.input().validate() {
        Ok(n) => n,
        Err(errors) => {
            return form_page(
                &state,
                jar,
                &f.view(true, errors),
                StatusCode::UNPROCESSABLE_ENTITY,
            );
        }
    };
    if let Err(e) = state.store.update_app(&app.name, &new).await {
        return pages::internal_error(&e);
    }
    let mut e = AuditEvent::new("client.updated");
    e.actor = Some(admin.email.to_string());
    e.app = Some(app.name.to_string());
    state.audit(e).await;
    Redirect::to("/admin/apps").into_response()
}

/// The confirmation page before a destructive action on an app (`action` is the path under
/// the app's address; texts are catalogue keys).
async fn confirm_app_action(
    state: &AppState,
    jar: CookieJar,
    name: &str,
    action: &str,
    title: &'static str,
    question: &'static str,
    button: &'static str,
) -> Response {
    if let Err(resp) = require_admin(state, &jar, "/admin/apps").await {
        return resp;
    }
    let app = match load(state, name).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let (jar, csrf) = session::csrf_token(state, jar);
    let q = crate::texts::tf(question, [("app", &app.display_name)]);
    (
        jar,
        pages::confirm(
            &csrf,
            crate::texts::t(title),
            &q,
            &format!("/admin/apps/{}/{action}", app.name),
            crate::texts::t(button),
            "/admin/apps",
        ),
    )
        .into_response()
}

pub async fn confirm_rotate(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(name): Path<String>,
) -> Response {
    confirm_app_action(
        &state,
        jar,
        &name,
        "rotate",
        "msg.admin_apps.rotate_client_secret",
        "msg.admin_apps.rotate_question",
        "msg.admin_apps.rotate_button",
    )
    .await
}

pub async fn rotate(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if !session::csrf_ok(&state, &jar, &headers, &f.csrf) {
        return pages::form_expired();
    }
    let admin = match require_admin(&state, &jar, "/admin/apps").await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let app = match load(&state, &name).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    if app.is_public() {
        return pages::error(
            StatusCode::CONFLICT,
            crate::texts::t("msg.admin_apps.no_secret_to_rotate"),
            crate::texts::t("msg.admin_apps.this_is_a_public_client"),
        );
    }
    let secret = new_client_secret();
    if let Err(e) = state
        .store
        .set_client_secret(&app.name, &hash_secret(&secret))
        .await
    {
        return pages::internal_error(&e);
    }
    let mut e = AuditEvent::new("client.secret_rotated");
    e.actor = Some(admin.email.to_string());
    e.app = Some(app.name.to_string());
    state.audit(e).await;
    credentials_page(&state, jar, &app, Some(&secret))
}

pub async fn confirm_remove(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(name): Path<String>,
) -> Response {
    confirm_app_action(
        &state,
        jar,
        &name,
        "remove",
        "msg.admin_apps.remove_app",
        "msg.admin_apps.remove_question",
        "msg.admin_apps.remove_button",
    )
    .await
}

pub async fn remove(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if !session::csrf_ok(&state, &jar, &headers, &f.csrf) {
        return pages::form_expired();
    }
    let admin = match require_admin(&state, &jar, "/admin/apps").await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let app = match load(&state, &name).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    if let Err(e) = state.store.remove_app(&app.name).await {
        return pages::internal_error(&e);
    }
    let mut e = AuditEvent::new("client.removed");
    e.actor = Some(admin.email.to_string());
    e.app = Some(app.name.to_string());
    state.audit(e).await;
    Redirect::to("/admin/apps").into_response()
}
