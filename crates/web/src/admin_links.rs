//! Helping someone in: an admin sends a fresh invitation (to someone who never chose a
//! password) or a password reset (to everyone else), or creates a single-use link to hand over
//! another way when mail is off or does not arrive. The page, the API and the CLI all come
//! here, and each use is audited.

use axum::{
    Form,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use axum_extra::extract::CookieJar;
use chrono::{DateTime, Utc};
use stackspin_domain::{User, secret::random_token};
use stackspin_storage::{AuditEvent, LinkPurpose, NewLink, OutgoingMail, StorageError};

use crate::{AppState, admin::CsrfOnly, pages, session};

/// How the link reaches the person.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// Mailed to their address (queued; the mail worker sends it).
    Mail,
    /// Shown once to the admin, who hands it over.
    Handover,
}

pub(crate) struct Issued {
    pub purpose: LinkPurpose,
    /// The link itself, only for a hand-over: a mailed one never leaves the mail.
    pub link: Option<String>,
    pub expires_at: DateTime<Utc>,
}

pub(crate) enum IssueError {
    /// Mail was asked for but outgoing mail is not set up.
    NoMail,
    Storage(StorageError),
}

impl From<StorageError> for IssueError {
    fn from(e: StorageError) -> Self {
        IssueError::Storage(e)
    }
}

/// A new invitation (no password yet) or reset link for `user`, by mail or for hand-over,
/// audited as done by `actor`.
pub(crate) async fn issue(
    state: &AppState,
    user: &User,
    delivery: Delivery,
    actor: &str,
) -> Result<Issued, IssueError> {
    if delivery == Delivery::Mail && state.mailer.is_none() {
        return Err(IssueError::NoMail);
    }
    let (purpose, lifetime) = if user.has_password() {
        (LinkPurpose::Reset, state.options.reset_link_lifetime)
    } else {
        (LinkPurpose::Invite, state.options.invite_link_lifetime)
    };
    let (link, new) = fresh_link(state, purpose, lifetime);
    let expires_at = new.expires_at;
    match delivery {
        Delivery::Mail => {
            let mail = link_mail(state, purpose, &user.name, &user.email, &link, lifetime).await;
            state.store.issue_link(user.id, &new, &mail).await?;
            state.mail_wake.notify_one();
        }
        Delivery::Handover => state.store.issue_handover_link(user.id, &new).await?,
    }
    let kind = match (purpose, delivery) {
        (LinkPurpose::Invite, Delivery::Mail) => "invitation.sent",
        (LinkPurpose::Invite, Delivery::Handover) => "invitation.link_created",
        (LinkPurpose::Reset, Delivery::Mail) => "recovery.sent_by_admin",
        (LinkPurpose::Reset, Delivery::Handover) => "recovery.link_created",
    };
    let mut e = AuditEvent::new(kind);
    e.actor = Some(actor.to_owned());
    e.user_id = Some(user.id.0);
    e.user_email = Some(user.email.to_string());
    state.audit(e).await;
    Ok(Issued {
        purpose,
        link: (delivery == Delivery::Handover).then_some(link),
        expires_at,
    })
}

/// What both buttons check first: the form's token, an admin, and the person by id.
async fn admin_and_person(
    state: &AppState,
    jar: &CookieJar,
    headers: &HeaderMap,
    csrf: &str,
    id: &str,
) -> Result<(User, User), Response> {
    if !session::csrf_ok(state, jar, headers, csrf) {
        return Err(pages::form_expired());
    }
    let admin = crate::admin::require_admin(state, jar, "/admin/users").await?;
    let user = crate::admin::load_user(state, id).await?;
    Ok((admin, user))
}

/// `POST /admin/users/{id}/send-link`: mail a fresh invitation or reset link.
pub async fn send(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    let (admin, user) = match admin_and_person(&state, &jar, &headers, &form.csrf, &id).await {
        Ok(both) => both,
        Err(resp) => return resp,
    };
    let (notice, status) = match issue(&state, &user, Delivery::Mail, admin.email.as_str()).await {
        Ok(i) => (
            (
                crate::texts::tf(
                    if i.purpose == LinkPurpose::Invite {
                        "msg.links.invitation_queued"
                    } else {
                        "msg.links.reset_queued"
                    },
                    [("email", user.email.as_str())],
                ),
                true,
            ),
            StatusCode::OK,
        ),
        Err(IssueError::NoMail) => (
            (crate::texts::t("msg.links.mail_is_off").to_owned(), false),
            StatusCode::CONFLICT,
        ),
        Err(IssueError::Storage(e)) => return pages::internal_error(&e),
    };
    crate::admin::render_edit_with(&state, jar, &user, Some((&notice.0, notice.1)), status).await
}

/// `POST /admin/users/{id}/handover-link`: a single-use link shown once, to hand over.
pub async fn handover(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    let (admin, user) = match admin_and_person(&state, &jar, &headers, &form.csrf, &id).await {
        Ok(both) => both,
        Err(resp) => return resp,
    };
    match issue(&state, &user, Delivery::Handover, admin.email.as_str()).await {
        Ok(Issued {
            purpose,
            link: Some(link),
            expires_at,
        }) => {
            let (jar, csrf) = session::csrf_token(&state, jar);
            (
                jar,
                pages::handover_link(
                    &csrf,
                    &user,
                    purpose == LinkPurpose::Invite,
                    &link,
                    &expires_at.format("%Y-%m-%d %H:%M UTC").to_string(),
                ),
            )
                .into_response()
        }
        Ok(_) | Err(IssueError::NoMail) => pages::internal_error(&"hand-over link not made"),
        Err(IssueError::Storage(e)) => pages::internal_error(&e),
    }
}

/// A new person's invitation: its single-use link (stored hashed) and the mail that carries
/// it. The users page and the API queue both with the account.
pub(crate) async fn new_invitation(
    state: &AppState,
    new: &stackspin_domain::NewUser,
) -> (NewLink, OutgoingMail) {
    let lifetime = state.options.invite_link_lifetime;
    let (link, stored) = fresh_link(state, LinkPurpose::Invite, lifetime);
    let mail = link_mail(
        state,
        LinkPurpose::Invite,
        &new.name,
        &new.email,
        &link,
        lifetime,
    )
    .await;
    (stored, mail)
}

/// A fresh single-use link: the address that goes to the person, and what the store keeps
/// of it (the token's hash, never the token).
pub(crate) fn fresh_link(
    state: &AppState,
    purpose: LinkPurpose,
    lifetime: chrono::Duration,
) -> (String, NewLink) {
    let token = random_token(32);
    let link = format!("{}/reset?token={token}", state.public_url);
    let stored = NewLink {
        token_hash: stackspin_domain::secret::hash_secret(&token),
        purpose,
        expires_at: Utc::now() + lifetime,
    };
    (link, stored)
}

/// The mail that carries an invitation or reset link, in the organisation's name.
pub(crate) async fn link_mail(
    state: &AppState,
    purpose: LinkPurpose,
    name: &stackspin_domain::UserName,
    to: &stackspin_domain::Email,
    link: &str,
    lifetime: chrono::Duration,
) -> OutgoingMail {
    let org = state.org_name().await;
    let (subject, body) = match purpose {
        LinkPurpose::Invite => stackspin_domain::mail::invitation(
            org.as_deref(),
            name.as_str(),
            link,
            lifetime.num_days(),
        ),
        LinkPurpose::Reset => stackspin_domain::mail::password_reset(
            org.as_deref(),
            name.as_str(),
            link,
            lifetime.num_minutes(),
        ),
    };
    OutgoingMail {
        to: to.to_string(),
        subject,
        body,
    }
}
