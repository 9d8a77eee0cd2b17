//! `stackspin user ...`: account administration straight on the database.

use anyhow::{Context, Result};
use serde::Serialize;
use stackspin_domain::secret::{hash_secret, random_token};
use stackspin_domain::{
    AppName, Email, NewUser, Role, User, UserName,
    password::{HashParams, Password},
    settings::Settings,
};
use stackspin_storage::{AuditEvent, LinkPurpose, NewLink, OutgoingMail, Store};
use tokio::io::AsyncReadExt;

use crate::{cli::UserCommand, open_existing_store, output};

/// A user as shown by the commands: everything but the password hash.
#[derive(Serialize)]
struct UserView<'a> {
    id: String,
    email: &'a str,
    name: &'a str,
    is_admin: bool,
    has_password: bool,
    created_at: String,
    updated_at: String,
}

impl<'a> From<&'a User> for UserView<'a> {
    fn from(u: &'a User) -> Self {
        UserView {
            id: u.id.to_string(),
            email: u.email.as_str(),
            name: u.name.as_str(),
            is_admin: u.is_admin,
            has_password: u.has_password(),
            created_at: u.created_at.to_rfc3339(),
            updated_at: u.updated_at.to_rfc3339(),
        }
    }
}

pub async fn run(settings: &Settings, cmd: UserCommand, json: bool) -> Result<()> {
    match cmd {
        UserCommand::Add {
            email,
            name,
            admin,
            password_stdin,
        } => {
            // Validate everything before touching the database or reading a password.
            let email = Email::parse(&email)?;
            let name = UserName::parse(&name)?;
            let password_hash = if password_stdin {
                let password = read_password_stdin(&[email.as_str(), name.as_str()]).await?;
                Some(
                    tokio::task::spawn_blocking(move || HashParams::default().hash(&password))
                        .await??,
                )
            } else {
                None
            };
            let store = open_existing_store(settings).await?;
            let new = NewUser {
                email,
                name,
                password_hash,
                is_admin: admin,
            };
            let user = if new.password_hash.is_some() {
                store.create_user(&new).await?
            } else {
                // No password: the user gets an invitation to choose one, queued with the
                // account in one transaction and sent by the running server.
                let token = random_token(32);
                let lifetime = chrono::Duration::days(7);
                let link = format!(
                    "{}/reset?token={token}",
                    crate::served_public_url(settings, &store).await
                );
                let org = store.brand().await?.name;
                let (subject, body) = stackspin_domain::mail::invitation(
                    org.as_ref().map(|n| n.as_str()),
                    new.name.as_str(),
                    &link,
                    lifetime.num_days(),
                );
                store
                    .invite_user(
                        &new,
                        &[],
                        &NewLink {
                            token_hash: hash_secret(&token),
                            purpose: LinkPurpose::Invite,
                            expires_at: chrono::Utc::now() + lifetime,
                        },
                        &OutgoingMail {
                            to: new.email.to_string(),
                            subject,
                            body,
                        },
                    )
                    .await?
            };
            audit(&store, "user.created", &user, None).await;
            output::emit(json, &UserView::from(&user), || {
                let mut s = format!(
                    "Added {}{} <{}> (id {}).",
                    if user.is_admin { "admin " } else { "" },
                    user.name.as_str(),
                    user.email,
                    user.id
                );
                if !user.has_password() {
                    s.push_str(
                        "\nInvitation queued: the running server emails them a link to choose a password.",
                    );
                }
                s
            })
        }
        UserCommand::List => {
            let store = open_existing_store(settings).await?;
            let users = store.list_users().await?;
            let views: Vec<UserView> = users.iter().map(UserView::from).collect();
            output::emit(json, &views, || {
                let rows: Vec<Vec<String>> = users
                    .iter()
                    .map(|u| {
                        vec![
                            u.email.to_string(),
                            u.name.as_str().to_owned(),
                            if u.is_admin { "yes" } else { "no" }.into(),
                            if u.has_password() { "set" } else { "invited" }.into(),
                            u.created_at.format("%Y-%m-%d %H:%M").to_string(),
                        ]
                    })
                    .collect();
                output::table(
                    &["EMAIL", "NAME", "ADMIN", "PASSWORD", "CREATED (UTC)"],
                    &rows,
                )
            })
        }
        UserCommand::Delete { email } => {
            let email = Email::parse(&email)?;
            let store = open_existing_store(settings).await?;
            let user = store.delete_user(&email).await?;
            audit(&store, "user.deleted", &user, None).await;
            output::emit(json, &UserView::from(&user), || {
                format!("Deleted {} <{}>.", user.name.as_str(), user.email)
            })
        }
        UserCommand::Link { email, print } => {
            let email = Email::parse(&email)?;
            if !print && settings.mail.is_none() {
                anyhow::bail!(
                    "outgoing mail is not set up, so no link can be mailed: use --print to get one to hand over"
                );
            }
            let store = open_existing_store(settings).await?;
            let user = store
                .user_by_email(&email)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no user with email {email}"))?;
            // The same lifetimes as the Dashboard's links: a week to accept an invitation,
            // an hour for a reset.
            let (purpose, lifetime) = if user.has_password() {
                (LinkPurpose::Reset, chrono::Duration::hours(1))
            } else {
                (LinkPurpose::Invite, chrono::Duration::days(7))
            };
            let token = random_token(32);
            let link = format!(
                "{}/reset?token={token}",
                crate::served_public_url(settings, &store).await
            );
            let expires_at = chrono::Utc::now() + lifetime;
            let new = NewLink {
                token_hash: hash_secret(&token),
                purpose,
                expires_at,
            };
            if print {
                store.issue_handover_link(user.id, &new).await?;
            } else {
                let org = store.brand().await?.name;
                let org = org.as_ref().map(|n| n.as_str());
                let (subject, body) = if purpose == LinkPurpose::Invite {
                    stackspin_domain::mail::invitation(
                        org,
                        user.name.as_str(),
                        &link,
                        lifetime.num_days(),
                    )
                } else {
                    stackspin_domain::mail::password_reset(
                        org,
                        user.name.as_str(),
                        &link,
                        lifetime.num_minutes(),
                    )
                };
                let mail = OutgoingMail {
                    to: user.email.to_string(),
                    subject,
                    body,
                };
                store.issue_link(user.id, &new, &mail).await?;
            }
            let kind = match (purpose, print) {
                (LinkPurpose::Invite, false) => "invitation.sent",
                (LinkPurpose::Invite, true) => "invitation.link_created",
                (LinkPurpose::Reset, false) => "recovery.sent_by_admin",
                (LinkPurpose::Reset, true) => "recovery.link_created",
            };
            audit(&store, kind, &user, None).await;
            let what = if purpose == LinkPurpose::Invite {
                "invitation"
            } else {
                "password reset"
            };
            output::emit(
                json,
                &serde_json::json!({
                    "email": user.email,
                    "purpose": purpose.as_str(),
                    "mailed": !print,
                    "link": print.then_some(&link),
                    "expires_at": expires_at.to_rfc3339(),
                }),
                || {
                    if print {
                        format!(
                            "{link}\nSingle-use {what} link for {}, valid until {}. Whoever has it can set the password: hand it over privately.",
                            user.email,
                            expires_at.format("%Y-%m-%d %H:%M UTC")
                        )
                    } else {
                        format!(
                            "Queued a {what} mail to {}; the running server sends it.",
                            user.email
                        )
                    }
                },
            )
        }
        UserCommand::Logout { email } => {
            let email = Email::parse(&email)?;
            let store = open_existing_store(settings).await?;
            let user = store
                .user_by_email(&email)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no user with email {email}"))?;
            let notices = store.end_user_sessions(user.id, "logout by admin").await?;
            audit(&store, "logout", &user, None).await;
            output::emit(
                json,
                &serde_json::json!({ "email": user.email, "app_notices": notices }),
                || {
                    format!(
                        "Ended every session of {}; {notices} app(s) will be told by back-channel logout.",
                        user.email
                    )
                },
            )
        }
        UserCommand::SetRole { email, app, role } => {
            let email = Email::parse(&email)?;
            let app = AppName::parse(&app)?;
            let role: Role = role.parse()?;
            let store = open_existing_store(settings).await?;
            let change = store.set_role(&email, &app, role).await?;
            audit(
                &store,
                "role.changed",
                &change.user,
                Some((change.app.as_str(), change.previous, change.role)),
            )
            .await;
            #[derive(Serialize)]
            struct RoleView<'a> {
                email: &'a str,
                app: &'a str,
                role: Role,
                previous: Role,
            }
            output::emit(
                json,
                &RoleView {
                    email: change.user.email.as_str(),
                    app: change.app.as_str(),
                    role: change.role,
                    previous: change.previous,
                },
                || {
                    format!(
                        "{} now has role {} in {} (was {}).",
                        change.user.email, change.role, change.app, change.previous
                    )
                },
            )
        }
    }
}

/// Records an admin action taken from the command line. The action has happened; failing to
/// record it is reported as a warning rather than an error.
async fn audit(store: &Store, kind: &str, user: &User, role: Option<(&str, Role, Role)>) {
    let mut e = AuditEvent::new(kind);
    e.actor = Some("cli".into());
    e.user_id = Some(user.id.0);
    e.user_email = Some(user.email.to_string());
    if let Some((app, previous, role)) = role {
        e.app = Some(app.to_owned());
        e.detail = serde_json::json!({"previous": previous, "role": role});
    }
    if let Err(err) = store.record_audit(&e).await {
        tracing::warn!(error = %err, "cannot record audit event");
    }
}

/// Reads a password from stdin (one line; the trailing newline is not part of it).
/// `personal` is what others know of its owner, which the password must not lean on.
async fn read_password_stdin(personal: &[&str]) -> Result<Password> {
    let mut buf = String::new();
    tokio::io::stdin()
        .take(Password::MAX_LEN as u64 + 2)
        .read_to_string(&mut buf)
        .await
        .context("cannot read the password from standard input")?;
    let line = buf.strip_suffix('\n').unwrap_or(&buf);
    let line = line.strip_suffix('\r').unwrap_or(line);
    Ok(Password::new_for(line, personal)?)
}
