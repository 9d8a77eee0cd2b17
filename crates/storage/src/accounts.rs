//! Account self-service: single-use links for invitations and password resets, the outgoing
//! mail queue, TOTP enrolment and recovery codes, and platform settings.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use stackspin_domain::{AppName, NewUser, Role, User, UserId, password::PasswordHash};
use uuid::Uuid;

use crate::{
    StorageError, Store, in_tx,
    oidc::{queue_logouts, record_failure},
    users::{UserRow, insert_user, set_roles_in_tx, user_columns},
    with_pool, with_writer,
};

/// A mail to queue together with the action that causes it.
#[derive(Clone, Debug)]
pub struct OutgoingMail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

/// A single-use link's stored half.
#[derive(Clone, Debug)]
pub struct NewLink {
    pub token_hash: String,
    pub purpose: LinkPurpose,
    pub expires_at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkPurpose {
    Reset,
    Invite,
}

impl LinkPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::Reset => "reset",
            LinkPurpose::Invite => "invite",
        }
    }
}

/// What became of a queued mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailStatus {
    pub subject: String,
    pub queued_at: DateTime<Utc>,
    /// Failed attempts so far.
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    /// Set when the worker stopped retrying.
    pub gave_up_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, FromRow)]
pub struct DueMail {
    pub id: Uuid,
    pub to_address: String,
    pub subject: String,
    pub body: String,
    pub attempts: i32,
}

macro_rules! insert_link_and_mail {
    ($tx:ident, $user:expr, $link:expr, $mail:expr) => {{
        let now = Utc::now();
        sqlx::query(
            "INSERT INTO user_tokens (token_hash, user_id, purpose, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&$link.token_hash)
        .bind($user.0)
        .bind($link.purpose.as_str())
        .bind(now)
        .bind($link.expires_at)
        .execute(&mut *$tx)
        .await?;
        sqlx::query(
            "INSERT INTO mail_outbox (id, to_address, subject, body, created_at, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(Uuid::new_v4())
        .bind(&$mail.to)
        .bind(&$mail.subject)
        .bind(&$mail.body)
        .bind(now)
        .bind(now)
        .execute(&mut *$tx)
        .await?;
    }};
}

/// Replaces a user's recovery codes inside a transaction.
macro_rules! replace_codes {
    ($tx:ident, $user:expr, $hashes:expr) => {{
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind($user.0)
            .execute(&mut *$tx)
            .await?;
        for h in $hashes {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind($user.0)
                .bind(h)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}

impl Store {
    /// Creates a user without a password and queues their invitation, in one transaction:
    /// there is never an invited user whose invitation was lost.
    pub async fn invite_user(
        &self,
        new: &NewUser,
        roles: &[(AppName, Role)],
        link: &NewLink,
        mail: &OutgoingMail,
    ) -> Result<User, StorageError> {
        let sealed_mail = self.sealed_mail(mail)?;
        let now = Utc::now();
        let user = User {
            id: UserId::new_random(),
            email: new.email.clone(),
            name: new.name.clone(),
            password_hash: None,
            is_admin: new.is_admin,
            created_at: now,
            updated_at: now,
        };
        in_tx!(self, tx, _d => {
            insert_user!(&mut *tx, &user);
            set_roles_in_tx!(tx, user.id, roles);
            insert_link_and_mail!(tx, user.id, link, &sealed_mail);
        });
        Ok(user)
    }

    /// Stores a reset (or fresh invitation) link for an existing user and queues its mail.
    pub async fn issue_link(
        &self,
        user: UserId,
        link: &NewLink,
        mail: &OutgoingMail,
    ) -> Result<(), StorageError> {
        let sealed_mail = self.sealed_mail(mail)?;
        in_tx!(self, tx, _d => {
            insert_link_and_mail!(tx, user, link, &sealed_mail);
        });
        Ok(())
    }

    /// Stores a link an admin hands over themselves (no mail). Earlier unused links of that
    /// person stop working in the same transaction, so only the link last handed out opens
    /// the account.
    pub async fn issue_handover_link(
        &self,
        user: UserId,
        link: &NewLink,
    ) -> Result<(), StorageError> {
        let now = Utc::now();
        in_tx!(self, tx, _d => {
            sqlx::query("UPDATE user_tokens SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL")
                .bind(now)
                .bind(user.0)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO user_tokens (token_hash, user_id, purpose, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&link.token_hash)
            .bind(user.0)
            .bind(link.purpose.as_str())
            .bind(now)
            .bind(link.expires_at)
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// The user a link belongs to, if it is unused and unexpired.
    pub async fn link_user(
        &self,
        token_hash: &str,
    ) -> Result<Option<(User, LinkPurpose)>, StorageError> {
        let now = Utc::now();
        let row: Option<(Uuid, String)> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT user_id, purpose FROM user_tokens \
                 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
            )
            .bind(token_hash)
            .bind(now)
            .fetch_optional(pool)
            .await?
        });
        let Some((id, purpose)) = row else {
            return Ok(None);
        };
        let purpose = if purpose == "invite" {
            LinkPurpose::Invite
        } else {
            LinkPurpose::Reset
        };
        Ok(self.user_by_id(UserId(id)).await?.map(|u| (u, purpose)))
    }

    /// Uses a link to set a password: the link and every other open link of the user are
    /// spent, and all their sessions end (with logout notices to apps), because whoever held
    /// the old password may be signed in somewhere. `None` if the link is not valid.
    pub async fn redeem_link(
        &self,
        token_hash: &str,
        new_hash: &PasswordHash,
    ) -> Result<Option<(User, LinkPurpose)>, StorageError> {
        let now = Utc::now();
        let done = in_tx!(self, tx, _d => {
            let row: Option<(Uuid, String)> = sqlx::query_as(
                "SELECT user_id, purpose FROM user_tokens \
                 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
            )
            .bind(token_hash)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            match row {
                None => None,
                Some((user_id, purpose)) => {
                    let claimed = sqlx::query(
                        "UPDATE user_tokens SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL",
                    )
                    .bind(now)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if claimed == 0 {
                        None
                    } else {
                        sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
                            .bind(new_hash.as_phc())
                            .bind(now)
                            .bind(user_id)
                            .execute(&mut *tx)
                            .await?;
                        queue_logouts!(tx, "password reset", "s.user_id = $1", user_id);
                        sqlx::query("UPDATE oauth_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
                            .bind(now)
                            .bind(user_id)
                            .execute(&mut *tx)
                            .await?;
                        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                            .bind(user_id)
                            .execute(&mut *tx)
                            .await?;
                        let user = sqlx::query_as::<_, UserRow>(concat!(
                            "SELECT ", user_columns!(), " FROM users WHERE id = $1"
                        ))
                        .bind(user_id)
                        .fetch_one(&mut *tx)
                        .await?
                        .into_user()?;
                        let purpose = if purpose == "invite" { LinkPurpose::Invite } else { LinkPurpose::Reset };
                        Some((user, purpose))
                    }
                }
            }
        });
        Ok(done)
    }

    // ----- mail queue -----

    pub async fn queue_mail(&self, mail: &OutgoingMail) -> Result<(), StorageError> {
        let mail = &self.sealed_mail(mail)?;
        let now = Utc::now();
        with_writer!(self, pool => {
            sqlx::query(
                "INSERT INTO mail_outbox (id, to_address, subject, body, created_at, next_attempt_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(Uuid::new_v4())
            .bind(&mail.to)
            .bind(&mail.subject)
            .bind(&mail.body)
            .bind(now)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Claims due mail, leasing it for two minutes so replicas do not send it twice.
    pub async fn claim_due_mail(&self, limit: i64) -> Result<Vec<DueMail>, StorageError> {
        let now = Utc::now();
        let lease = now + chrono::Duration::seconds(120);
        let due = in_tx!(self, tx, _d => {
            let due = sqlx::query_as::<_, DueMail>(
                "SELECT id, to_address, subject, body, attempts FROM mail_outbox \
                 WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $1 \
                 ORDER BY next_attempt_at LIMIT $2",
            )
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
            for m in &due {
                sqlx::query("UPDATE mail_outbox SET next_attempt_at = $1 WHERE id = $2")
                    .bind(lease)
                    .bind(m.id)
                    .execute(&mut *tx)
                    .await?;
            }
            due
        });
        due.into_iter()
            .map(|mut m| {
                m.body = self.open_text(&m.body)?;
                Ok(m)
            })
            .collect()
    }

    pub async fn mail_sent(&self, id: Uuid) -> Result<(), StorageError> {
        let now = Utc::now();
        with_writer!(self, pool => {
            sqlx::query(
                "UPDATE mail_outbox SET sent_at = $1, body = '', attempts = attempts + 1 WHERE id = $2",
            )
            .bind(now)
            .bind(id)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Records a failed attempt: retry at `retry_at`, or give up when it is `None`.
    pub async fn mail_failed(
        &self,
        id: Uuid,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<(), StorageError> {
        record_failure!(self, "mail_outbox", id, error, retry_at);
        Ok(())
    }

    /// The newest mail queued for `address` (any case), to tell an admin whether it left.
    pub async fn last_mail_to(&self, address: &str) -> Result<Option<MailStatus>, StorageError> {
        type Row = (
            String,
            DateTime<Utc>,
            i64,
            DateTime<Utc>,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
            Option<String>,
        );
        let row: Option<Row> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT subject, created_at, attempts, next_attempt_at, sent_at, failed_at, last_error \
                 FROM mail_outbox WHERE lower(to_address) = lower($1) \
                 ORDER BY created_at DESC LIMIT 1",
            )
            .bind(address)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(
            |(subject, queued_at, attempts, next_attempt_at, sent_at, failed_at, last_error)| {
                MailStatus {
                    subject,
                    queued_at,
                    attempts,
                    next_attempt_at,
                    sent_at,
                    gave_up_at: failed_at,
                    last_error,
                }
            },
        ))
    }

    /// Mail not yet sent (queued or being retried).
    pub async fn pending_mail(&self) -> Result<i64, StorageError> {
        Ok(with_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM mail_outbox WHERE sent_at IS NULL AND failed_at IS NULL",
            )
            .fetch_one(pool)
            .await?
        }))
    }

    // ----- TOTP and recovery codes -----

    /// Enrols (`Some`) or removes (`None`) TOTP, replacing the recovery codes.
    pub async fn set_totp(
        &self,
        user: UserId,
        secret: Option<&str>,
        recovery_code_hashes: &[String],
    ) -> Result<(), StorageError> {
        let secret = secret.map(|s| self.seal_text(s)).transpose()?;
        in_tx!(self, tx, _d => {
            sqlx::query("UPDATE users SET totp_secret = $1, totp_last_step = NULL, updated_at = $2 WHERE id = $3")
                .bind(secret.as_deref())
                .bind(Utc::now())
                .bind(user.0)
                .execute(&mut *tx)
                .await?;
            replace_codes!(tx, user, recovery_code_hashes);
        });
        Ok(())
    }

    /// Replaces the user's recovery codes with new ones (the old ones stop working).
    pub async fn replace_recovery_codes(
        &self,
        user: UserId,
        recovery_code_hashes: &[String],
    ) -> Result<(), StorageError> {
        in_tx!(self, tx, _d => {
            replace_codes!(tx, user, recovery_code_hashes);
        });
        Ok(())
    }

    /// The user's TOTP secret, if enrolled.
    pub async fn totp_secret(&self, user: UserId) -> Result<Option<String>, StorageError> {
        let stored = with_pool!(self, pool => {
            sqlx::query_scalar::<_, Option<String>>("SELECT totp_secret FROM users WHERE id = $1")
                .bind(user.0)
                .fetch_optional(pool)
                .await?
                .flatten()
        });
        stored.map(|s| self.open_text(&s)).transpose()
    }

    /// Accepts a TOTP time step once: a step at or before the last accepted one is a replay.
    pub async fn accept_totp_step(&self, user: UserId, step: i64) -> Result<bool, StorageError> {
        let n = with_writer!(self, pool => {
            sqlx::query(
                "UPDATE users SET totp_last_step = $1 WHERE id = $2 \
                 AND (totp_last_step IS NULL OR totp_last_step < $1)",
            )
            .bind(step)
            .bind(user.0)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Spends a recovery code; false if it is unknown or used.
    pub async fn use_recovery_code(
        &self,
        user: UserId,
        code_hash: &str,
    ) -> Result<bool, StorageError> {
        let now = Utc::now();
        let n = with_writer!(self, pool => {
            sqlx::query(
                "UPDATE recovery_codes SET used_at = $1 \
                 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL",
            )
            .bind(now)
            .bind(user.0)
            .bind(code_hash)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    pub async fn unused_recovery_codes(&self, user: UserId) -> Result<i64, StorageError> {
        Ok(with_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL")
                .bind(user.0)
                .fetch_one(pool)
                .await?
        }))
    }

    // ----- settings -----

    pub async fn setting(&self, key: &str) -> Result<Option<String>, StorageError> {
        Ok(with_pool!(self, pool => {
            sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_optional(pool)
                .await?
        }))
    }

    pub async fn set_setting(&self, key: &str, value: &str) -> Result<(), StorageError> {
        let now = Utc::now();
        with_writer!(self, pool => {
            sqlx::query(
                "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(key)
            .bind(value)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}
