//! Provider state: signing keys, login sessions, authorization codes, tokens and the
//! back-channel logout outbox.
//!
//! Secrets handed out (session cookies, codes, tokens) are looked up by their SHA-256; the
//! caller hashes. Each operation that must be all-or-nothing (redeeming a code, rotating a
//! refresh token, ending a session and queueing its logout notices) is one transaction.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use stackspin_domain::{AppId, UserId};
use uuid::Uuid;

use crate::{StorageError, Store, in_tx, lock_admins, with_pool, with_writer};

#[derive(Clone, Debug, FromRow)]
pub struct StoredKey {
    pub kid: String,
    pub alg: String,
    pub private_key: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug)]
pub struct NewSession {
    pub token_hash: String,
    pub sid: String,
    pub user_id: UserId,
    pub auth_time: DateTime<Utc>,
    pub amr: Vec<String>,
    pub expires_at: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Clone, Debug)]
pub struct SessionRecord {
    pub sid: String,
    pub user_id: UserId,
    pub auth_time: DateTime<Utc>,
    pub amr: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(FromRow)]
struct SessionRow {
    sid: String,
    user_id: Uuid,
    auth_time: DateTime<Utc>,
    amr: String,
    created_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    ip: Option<String>,
    user_agent: Option<String>,
}

fn amr_from(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .collect()
}

impl From<SessionRow> for SessionRecord {
    fn from(r: SessionRow) -> Self {
        SessionRecord {
            sid: r.sid,
            user_id: UserId(r.user_id),
            auth_time: r.auth_time,
            amr: amr_from(&r.amr),
            created_at: r.created_at,
            last_seen_at: r.last_seen_at,
            expires_at: r.expires_at,
            ip: r.ip,
            user_agent: r.user_agent,
        }
    }
}

/// An authorization code's binding: what the token request must match.
#[derive(Clone, Debug, FromRow)]
pub struct CodeRecord {
    pub code_hash: String,
    pub app_id: Uuid,
    pub user_id: Uuid,
    pub sid: String,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: DateTime<Utc>,
    pub amr: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug)]
pub enum CodeRedemption {
    Redeemed(Box<CodeRecord>),
    /// Used before: the tokens issued from it have now been revoked (RFC 9700 §4.2.4).
    Replayed,
    Expired,
    Unknown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
        }
    }
}

#[derive(Clone, Debug)]
pub struct TokenRecord {
    pub token_hash: String,
    pub kind: TokenKind,
    pub family_id: String,
    pub app_id: AppId,
    pub user_id: UserId,
    pub sid: Option<String>,
    pub scope: String,
    pub auth_time: DateTime<Utc>,
    pub amr: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(FromRow)]
struct TokenRow {
    token_hash: String,
    kind: String,
    family_id: String,
    app_id: Uuid,
    user_id: Uuid,
    sid: Option<String>,
    scope: String,
    auth_time: DateTime<Utc>,
    amr: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl TokenRow {
    fn record(&self) -> TokenRecord {
        TokenRecord {
            token_hash: self.token_hash.clone(),
            kind: if self.kind == "refresh" {
                TokenKind::Refresh
            } else {
                TokenKind::Access
            },
            family_id: self.family_id.clone(),
            app_id: AppId(self.app_id),
            user_id: UserId(self.user_id),
            sid: self.sid.clone(),
            scope: self.scope.clone(),
            auth_time: self.auth_time,
            amr: amr_from(&self.amr),
            created_at: self.created_at,
            expires_at: self.expires_at,
        }
    }
}

macro_rules! token_columns {
    () => {
        "token_hash, kind, family_id, app_id, user_id, sid, scope, auth_time, amr, created_at, \
         expires_at, used_at, revoked_at"
    };
}

#[derive(Debug)]
pub enum RefreshOutcome {
    /// The old token, now used; the new pair was stored in the same family.
    Rotated(TokenRecord),
    /// Used before: the whole family has been revoked.
    Replayed,
    Invalid,
}

/// A logout notice due for delivery.
#[derive(Clone, Debug, FromRow)]
pub struct DueLogout {
    pub id: Uuid,
    pub client_id: String,
    pub uri: String,
    pub sub: String,
    pub sid: Option<String>,
    pub attempts: i32,
}

/// Records a failed delivery in one of the outbox tables (`backchannel_outbox`,
/// `mail_outbox`), which share these columns: retry at `$retry_at`, or give up when `None`.
macro_rules! record_failure {
    ($store:expr, $table:literal, $id:expr, $error:expr, $retry_at:expr) => {{
        let now = Utc::now();
        with_writer!($store, pool => {
            sqlx::query(concat!(
                "UPDATE ", $table, " SET attempts = attempts + 1, last_error = $1, \
                 next_attempt_at = COALESCE($2, next_attempt_at), \
                 failed_at = CASE WHEN $2 IS NULL THEN $3 ELSE NULL END WHERE id = $4"
            ))
            .bind($error)
            .bind($retry_at)
            .bind(now)
            .bind($id)
            .execute(pool)
            .await?;
        });
    }};
}
pub(crate) use record_failure;

/// Inserts one token inside a transaction.
macro_rules! insert_token {
    ($exec:expr, $t:expr) => {{
        let t: &TokenRecord = $t;
        sqlx::query(
            "INSERT INTO oauth_tokens (token_hash, kind, family_id, app_id, user_id, sid, scope, \
             auth_time, amr, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&t.token_hash)
        .bind(t.kind.as_str())
        .bind(&t.family_id)
        .bind(t.app_id.0)
        .bind(t.user_id.0)
        .bind(t.sid.as_deref())
        .bind(&t.scope)
        .bind(t.auth_time)
        .bind(t.amr.join(" "))
        .bind(t.created_at)
        .bind(t.expires_at)
        .execute($exec)
        .await?;
    }};
}

/// Queues a logout notice for every app (with a back-channel URI) that the selected sessions
/// signed into, then forgets those session-app links. `$filter` is a SQL condition on
/// `s` (sessions) and `sa` (session_apps) using `$1`.
macro_rules! queue_logouts {
    ($tx:ident, $reason:expr, $filter:literal, $($bind:expr),+) => {{
        let rows: Vec<(Uuid, String, Uuid)> = sqlx::query_as(concat!(
            "SELECT sa.app_id, sa.sid, s.user_id FROM session_apps sa \
             JOIN sessions s ON s.sid = sa.sid \
             JOIN apps a ON a.id = sa.app_id \
             WHERE a.backchannel_logout_uri IS NOT NULL AND ",
            $filter
        ))
        $(.bind($bind))+
        .fetch_all(&mut *$tx)
        .await?;
        let now = Utc::now();
        for (app_id, sid, user_id) in &rows {
            sqlx::query(
                "INSERT INTO backchannel_outbox (id, app_id, sub, sid, reason, created_at, \
                 next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(Uuid::new_v4())
            .bind(*app_id)
            .bind(user_id.to_string())
            .bind(sid.as_str())
            .bind($reason)
            .bind(now)
            .bind(now)
            .execute(&mut *$tx)
            .await?;
        }
        rows.len()
    }};
}
pub(crate) use queue_logouts;

impl Store {
    // ----- signing keys -----

    /// Keys still published (not past their expiry), newest first.
    pub async fn signing_keys(&self) -> Result<Vec<StoredKey>, StorageError> {
        let now = Utc::now();
        let keys = with_pool!(self, pool => {
            sqlx::query_as::<_, StoredKey>(
                "SELECT kid, alg, private_key, created_at, retired_at, expires_at FROM signing_keys \
                 WHERE expires_at IS NULL OR expires_at > $1 ORDER BY created_at DESC, kid",
            )
            .bind(now)
            .fetch_all(pool)
            .await?
        });
        keys.into_iter()
            .map(|mut k| {
                k.private_key = self.open_bytes(&k.private_key)?;
                Ok(k)
            })
            .collect()
    }

    /// Stores a new key for `alg`. With `rotate_until`, every current key of that algorithm
    /// is retired (no longer signs) but stays published until that time. Without it, the key
    /// is only stored if there is no current key for `alg` yet, so replicas starting together
    /// do not each add one. Returns whether the key was stored.
    pub async fn add_signing_key(
        &self,
        kid: &str,
        alg: &str,
        private_key: &[u8],
        rotate_until: Option<DateTime<Utc>>,
    ) -> Result<bool, StorageError> {
        let sealed_key = self.seal_bytes(private_key)?;
        let now = Utc::now();
        let stored = in_tx!(self, tx, d => {
            lock_admins!(tx, d);
            let current: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM signing_keys WHERE alg = $1 AND retired_at IS NULL",
            )
            .bind(alg)
            .fetch_one(&mut *tx)
            .await?;
            let store = match rotate_until {
                Some(until) => {
                    sqlx::query(
                        "UPDATE signing_keys SET retired_at = $1, expires_at = $2 \
                         WHERE alg = $3 AND retired_at IS NULL",
                    )
                    .bind(now)
                    .bind(until)
                    .bind(alg)
                    .execute(&mut *tx)
                    .await?;
                    true
                }
                None => current == 0,
            };
            if store {
                sqlx::query(
                    "INSERT INTO signing_keys (kid, alg, private_key, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(kid)
                .bind(alg)
                .bind(&sealed_key)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            store
        });
        Ok(stored)
    }

    // ----- sessions -----

    /// Starts a session; the person's last sign-in is now.
    pub async fn create_session(&self, s: &NewSession) -> Result<(), StorageError> {
        let now = Utc::now();
        in_tx!(self, tx, _dialect => {
            sqlx::query("UPDATE users SET last_login_at = $1 WHERE id = $2")
                .bind(now)
                .bind(s.user_id.0)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO sessions (token_hash, sid, user_id, auth_time, amr, created_at, \
                 last_seen_at, expires_at, ip, user_agent) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&s.token_hash)
            .bind(&s.sid)
            .bind(s.user_id.0)
            .bind(s.auth_time)
            .bind(s.amr.join(" "))
            .bind(now)
            .bind(now)
            .bind(s.expires_at)
            .bind(s.ip.as_deref())
            .bind(s.user_agent.as_deref())
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// The live session behind a cookie, if any.
    pub async fn session_by_token_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<SessionRecord>, StorageError> {
        let now = Utc::now();
        let row = with_pool!(self, pool => {
            sqlx::query_as::<_, SessionRow>(
                "SELECT sid, user_id, auth_time, amr, created_at, last_seen_at, expires_at, ip, \
                 user_agent FROM sessions WHERE token_hash = $1 AND expires_at > $2",
            )
            .bind(token_hash)
            .bind(now)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(SessionRecord::from))
    }

    pub async fn sessions_of_user(&self, user: UserId) -> Result<Vec<SessionRecord>, StorageError> {
        let now = Utc::now();
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, SessionRow>(
                "SELECT sid, user_id, auth_time, amr, created_at, last_seen_at, expires_at, ip, \
                 user_agent FROM sessions WHERE user_id = $1 AND expires_at > $2 \
                 ORDER BY created_at DESC",
            )
            .bind(user.0)
            .bind(now)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(SessionRecord::from).collect())
    }

    /// Records stronger authentication on a live session (after enrolling a second factor).
    pub async fn update_session_amr(&self, sid: &str, amr: &[String]) -> Result<(), StorageError> {
        with_writer!(self, pool => {
            sqlx::query("UPDATE sessions SET amr = $1 WHERE sid = $2")
                .bind(amr.join(" "))
                .bind(sid)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Ends one session: its tokens are revoked and every app it signed into is queued a
    /// logout notice. Returns how many notices were queued.
    pub async fn end_session(&self, sid: &str, reason: &str) -> Result<usize, StorageError> {
        let now = Utc::now();
        let queued = in_tx!(self, tx, _d => {
            let queued = queue_logouts!(tx, reason, "sa.sid = $1", sid);
            sqlx::query("UPDATE oauth_tokens SET revoked_at = $1 WHERE sid = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(sid)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM sessions WHERE sid = $1")
                .bind(sid)
                .execute(&mut *tx)
                .await?;
            queued
        });
        Ok(queued)
    }

    /// Ends every session of a user (logout everywhere, password reset), revoking all their
    /// tokens.
    pub async fn end_user_sessions(
        &self,
        user: UserId,
        reason: &str,
    ) -> Result<usize, StorageError> {
        let now = Utc::now();
        let queued = in_tx!(self, tx, _d => {
            let queued = queue_logouts!(tx, reason, "s.user_id = $1", user.0);
            sqlx::query("UPDATE oauth_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(user.0)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(user.0)
                .execute(&mut *tx)
                .await?;
            queued
        });
        Ok(queued)
    }

    // ----- authorization codes -----

    pub async fn insert_code(&self, c: &CodeRecord) -> Result<(), StorageError> {
        with_writer!(self, pool => {
            sqlx::query(
                "INSERT INTO auth_codes (code_hash, app_id, user_id, sid, redirect_uri, scope, \
                 nonce, code_challenge, auth_time, amr, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(&c.code_hash)
            .bind(c.app_id)
            .bind(c.user_id)
            .bind(&c.sid)
            .bind(&c.redirect_uri)
            .bind(&c.scope)
            .bind(c.nonce.as_deref())
            .bind(c.code_challenge.as_deref())
            .bind(c.auth_time)
            .bind(&c.amr)
            .bind(c.created_at)
            .bind(c.expires_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Marks a code used, exactly once. A second redemption revokes every token issued from
    /// the code (their family id is the code's hash).
    pub async fn redeem_code(&self, code_hash: &str) -> Result<CodeRedemption, StorageError> {
        let now = Utc::now();
        let outcome = in_tx!(self, tx, _d => {
            #[derive(FromRow)]
            struct Row {
                #[sqlx(flatten)]
                rec: CodeRecord,
                used_at: Option<DateTime<Utc>>,
            }
            let row = sqlx::query_as::<_, Row>(
                "SELECT code_hash, app_id, user_id, sid, redirect_uri, scope, nonce, \
                 code_challenge, auth_time, amr, created_at, expires_at, used_at \
                 FROM auth_codes WHERE code_hash = $1",
            )
            .bind(code_hash)
            .fetch_optional(&mut *tx)
            .await?;
            match row {
                None => CodeRedemption::Unknown,
                Some(row) => {
                    let claimed = sqlx::query(
                        "UPDATE auth_codes SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL",
                    )
                    .bind(now)
                    .bind(code_hash)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if row.used_at.is_some() || claimed == 0 {
                        sqlx::query(
                            "UPDATE oauth_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
                        )
                        .bind(now)
                        .bind(code_hash)
                        .execute(&mut *tx)
                        .await?;
                        CodeRedemption::Replayed
                    } else if row.rec.expires_at <= now {
                        CodeRedemption::Expired
                    } else {
                        CodeRedemption::Redeemed(Box::new(row.rec))
                    }
                }
            }
        });
        Ok(outcome)
    }

    // ----- tokens -----

    /// Stores freshly issued tokens. Tokens tied to a browser session also record that the
    /// session signed into their app, in the same transaction, so logging out later notifies
    /// that app.
    pub async fn insert_tokens(&self, tokens: &[TokenRecord]) -> Result<(), StorageError> {
        let now = Utc::now();
        in_tx!(self, tx, _d => {
            for t in tokens {
                insert_token!(&mut *tx, t);
            }
            if let Some(t) = tokens.iter().find(|t| t.sid.is_some()) {
                sqlx::query(
                    "INSERT INTO session_apps (sid, app_id, first_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (sid, app_id) DO NOTHING",
                )
                .bind(t.sid.as_deref())
                .bind(t.app_id.0)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
        });
        Ok(())
    }

    /// A token that is neither revoked nor expired (nor, for refresh tokens, used).
    pub async fn active_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<TokenRecord>, StorageError> {
        let now = Utc::now();
        let row = with_pool!(self, pool => {
            sqlx::query_as::<_, TokenRow>(concat!(
                "SELECT ", token_columns!(), " FROM oauth_tokens WHERE token_hash = $1 \
                 AND revoked_at IS NULL AND used_at IS NULL AND expires_at > $2"
            ))
            .bind(token_hash)
            .bind(now)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|r| r.record()))
    }

    /// Exchanges a refresh token for a new pair in the same family. Presenting an already
    /// used refresh token revokes the whole family: either the client or an attacker holds a
    /// stolen copy, and we cannot tell which.
    pub async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        app: AppId,
        new_access: (&str, DateTime<Utc>),
        new_refresh: (&str, DateTime<Utc>),
    ) -> Result<RefreshOutcome, StorageError> {
        let now = Utc::now();
        let outcome = in_tx!(self, tx, _d => {
            let row = sqlx::query_as::<_, TokenRow>(concat!(
                "SELECT ", token_columns!(), " FROM oauth_tokens WHERE token_hash = $1 AND kind = 'refresh'"
            ))
            .bind(old_hash)
            .fetch_optional(&mut *tx)
            .await?;
            match row {
                Some(r) if r.app_id == app.0 && r.revoked_at.is_none() && r.expires_at > now => {
                    let claimed = sqlx::query(
                        "UPDATE oauth_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL",
                    )
                    .bind(now)
                    .bind(old_hash)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if r.used_at.is_some() || claimed == 0 {
                        sqlx::query(
                            "UPDATE oauth_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
                        )
                        .bind(now)
                        .bind(&r.family_id)
                        .execute(&mut *tx)
                        .await?;
                        RefreshOutcome::Replayed
                    } else {
                        let old = r.record();
                        for (kind, (hash, expires_at)) in
                            [(TokenKind::Access, new_access), (TokenKind::Refresh, new_refresh)]
                        {
                            let t = TokenRecord {
                                token_hash: hash.to_owned(),
                                kind,
                                created_at: now,
                                expires_at,
                                ..old.clone()
                            };
                            insert_token!(&mut *tx, &t);
                        }
                        RefreshOutcome::Rotated(old)
                    }
                }
                _ => RefreshOutcome::Invalid,
            }
        });
        Ok(outcome)
    }

    /// Revokes a token the client presents (RFC 7009). Revoking a refresh token revokes its
    /// family, so the access tokens minted from it stop working too. Tokens of other clients
    /// are left alone.
    pub async fn revoke_token(&self, token_hash: &str, app: AppId) -> Result<(), StorageError> {
        let now = Utc::now();
        in_tx!(self, tx, _d => {
            let row: Option<(String, String)> = sqlx::query_as(
                "SELECT kind, family_id FROM oauth_tokens WHERE token_hash = $1 AND app_id = $2",
            )
            .bind(token_hash)
            .bind(app.0)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((kind, family)) = row {
                if kind == "refresh" {
                    sqlx::query("UPDATE oauth_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL")
                        .bind(now)
                        .bind(&family)
                        .execute(&mut *tx)
                        .await?;
                } else {
                    sqlx::query("UPDATE oauth_tokens SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL")
                        .bind(now)
                        .bind(token_hash)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        });
        Ok(())
    }

    // ----- back-channel logout outbox -----

    /// Claims up to `limit` due notices for delivery, leasing them for a minute so another
    /// replica does not deliver the same ones meanwhile.
    pub async fn claim_due_logouts(&self, limit: i64) -> Result<Vec<DueLogout>, StorageError> {
        let now = Utc::now();
        let lease = now + chrono::Duration::seconds(60);
        let due = in_tx!(self, tx, _d => {
            let due = sqlx::query_as::<_, DueLogout>(
                "SELECT o.id, a.client_id, a.backchannel_logout_uri AS uri, o.sub, o.sid, o.attempts \
                 FROM backchannel_outbox o JOIN apps a ON a.id = o.app_id \
                 WHERE o.delivered_at IS NULL AND o.failed_at IS NULL AND o.next_attempt_at <= $1 \
                 AND a.backchannel_logout_uri IS NOT NULL \
                 ORDER BY o.next_attempt_at LIMIT $2",
            )
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
            for d in &due {
                sqlx::query("UPDATE backchannel_outbox SET next_attempt_at = $1 WHERE id = $2")
                    .bind(lease)
                    .bind(d.id)
                    .execute(&mut *tx)
                    .await?;
            }
            due
        });
        Ok(due)
    }

    pub async fn logout_delivered(&self, id: Uuid) -> Result<(), StorageError> {
        let now = Utc::now();
        with_writer!(self, pool => {
            sqlx::query("UPDATE backchannel_outbox SET delivered_at = $1, attempts = attempts + 1 WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Records a failed attempt: retry at `retry_at`, or give up when it is `None`.
    pub async fn logout_failed(
        &self,
        id: Uuid,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<(), StorageError> {
        record_failure!(self, "backchannel_outbox", id, error, retry_at);
        Ok(())
    }

    /// Notices not yet delivered (queued or being retried), for tests and status pages.
    pub async fn pending_logouts(&self) -> Result<i64, StorageError> {
        Ok(with_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM backchannel_outbox WHERE delivered_at IS NULL AND failed_at IS NULL",
            )
            .fetch_one(pool)
            .await?
        }))
    }
}
