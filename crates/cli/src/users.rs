//! `stackspin user ...`: account administration straight on the database.

use anyhow::{Context, Result};
use serde::Serialize;
use stackspin_domain::{
    AppName, Email, NewUser, Role, User, UserName,
    password::{HashParams, Password},
    settings::Settings,
};
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
                let password = read_password_stdin().await?;
                Some(
                    tokio::task::spawn_blocking(move || HashParams::default().hash(&password))
                        .await??,
                )
            } else {
                None
            };
            let store = open_existing_store(settings).await?;
            let user = store
                .create_user(&NewUser {
                    email,
                    name,
                    password_hash,
                    is_admin: admin,
                })
                .await?;
            output::emit(json, &UserView::from(&user), || {
                let mut s = format!(
                    "Added {}{} <{}> (id {}).",
                    if user.is_admin { "admin " } else { "" },
                    user.name.as_str(),
                    user.email,
                    user.id
                );
                if !user.has_password() {
                    s.push_str("\nNo password yet: they set one through their invitation.");
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
            output::emit(json, &UserView::from(&user), || {
                format!("Deleted {} <{}>.", user.name.as_str(), user.email)
            })
        }
        UserCommand::SetRole { email, app, role } => {
            let email = Email::parse(&email)?;
            let app = AppName::parse(&app)?;
            let role: Role = role.parse()?;
            let store = open_existing_store(settings).await?;
            let change = store.set_role(&email, &app, role).await?;
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

/// Reads a password from stdin (one line; the trailing newline is not part of it).
async fn read_password_stdin() -> Result<Password> {
    let mut buf = String::new();
    tokio::io::stdin()
        .take(Password::MAX_LEN as u64 + 2)
        .read_to_string(&mut buf)
        .await
        .context("cannot read the password from standard input")?;
    let line = buf.strip_suffix('\n').unwrap_or(&buf);
    let line = line.strip_suffix('\r').unwrap_or(line);
    Ok(Password::new(line)?)
}
