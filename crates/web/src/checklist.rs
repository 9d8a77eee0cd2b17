//! The first-run checklist on the setup admin's start page: what a new Stackspin needs
//! before the organisation moves in. Each step is ticked from the platform's real state
//! (not from clicks), and the admin can hide the list once they have seen it.

use axum::{
    Form,
    extract::State,
    http::HeaderMap,
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;
use stackspin_domain::User;
use stackspin_storage::StorageError;

use crate::{AppState, pages, session};

const HIDDEN: &str = "checklist_hidden";
/// Set once the setup password no longer opens the setup account, so it is checked (one
/// password hash) only until then.
const SETUP_PASSWORD_CHANGED: &str = "setup_password_changed";
/// Set when a test mail was accepted by the mail server.
pub const MAIL_TESTED: &str = "mail_tested";

pub struct Step {
    pub id: &'static str,
    pub done: bool,
    pub title: &'static str,
    pub how: &'static str,
    /// Where to do it.
    pub link: &'static str,
    pub link_text: &'static str,
}

/// The steps, for an admin who has not hidden the list; `None` otherwise.
pub async fn for_user(state: &AppState, user: &User) -> Result<Option<Vec<Step>>, StorageError> {
    if !user.is_admin || state.store.setting(HIDDEN).await?.is_some() {
        return Ok(None);
    }
    let password_changed = setup_password_changed(state, user).await?;
    let mail_tested = state.mailer.is_some() && state.store.setting(MAIL_TESTED).await?.is_some();
    let two_step = state.store.totp_secret(user.id).await?.is_some();
    let people = state.store.count_users().await? > 1;
    let apps = !state.store.list_apps().await?.is_empty();
    use crate::texts;
    Ok(Some(vec![
        Step {
            id: "step-password",
            done: password_changed,
            title: texts::t("checklist.password"),
            how: texts::t("checklist.password_how"),
            link: "/account",
            link_text: texts::t("common.my_account"),
        },
        Step {
            id: "step-mail",
            done: mail_tested,
            title: texts::t("checklist.mail"),
            how: if state.mailer.is_some() {
                texts::t("checklist.mail_how_test")
            } else {
                texts::t("checklist.mail_how_configure")
            },
            link: "/admin/settings",
            link_text: texts::t("common.settings"),
        },
        Step {
            id: "step-two-step",
            done: two_step,
            title: texts::t("checklist.two_step"),
            how: texts::t("checklist.two_step_how"),
            link: "/account/mfa",
            link_text: texts::t("common.two_step_verification"),
        },
        Step {
            id: "step-people",
            done: people,
            title: texts::t("checklist.people"),
            how: texts::t("checklist.people_how"),
            link: "/admin/users/new",
            link_text: texts::t("common.add_new_user"),
        },
        Step {
            id: "step-apps",
            done: apps,
            title: texts::t("checklist.apps"),
            how: texts::t("checklist.apps_how"),
            link: "/admin/catalog",
            link_text: texts::t("nav.manage_apps"),
        },
    ]))
}

/// Whether the setup account's password is no longer the setup password. Only the setup
/// admin is asked; for everyone else the step does not apply and counts as done.
async fn setup_password_changed(state: &AppState, user: &User) -> Result<bool, StorageError> {
    if state.store.setting(SETUP_PASSWORD_CHANGED).await?.is_some() {
        return Ok(true);
    }
    let Some(setup) = state.store.setup_credentials().await? else {
        return Ok(true);
    };
    if setup.user_id != user.id {
        return Ok(true);
    }
    let Some(hash) = user.password_hash.clone() else {
        return Ok(false);
    };
    // The hashing pool may be too busy to ask now: then the step just stays open.
    let Some(verdict) = state.verify_password(setup.password.clone(), hash).await else {
        return Ok(false);
    };
    let changed = !verdict.matched();
    if changed {
        state
            .store
            .set_setting(SETUP_PASSWORD_CHANGED, "yes")
            .await?;
    }
    Ok(changed)
}

#[derive(Deserialize)]
pub struct HideForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /checklist/hide`.
pub async fn hide(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(f): Form<HideForm>,
) -> Response {
    if !session::csrf_ok(&state, &jar, &headers, &f.csrf) {
        return pages::form_expired();
    }
    if let Err(resp) = crate::admin::require_admin(&state, &jar, "/").await {
        return resp;
    }
    if let Err(e) = state.store.set_setting(HIDDEN, "yes").await {
        return pages::internal_error(&e);
    }
    Redirect::to("/").into_response()
}
