//! Sessions for tools behind the ingress's forward-auth. The Dashboard's cookie is host-only,
//! so a tool on its own host gets a session of its own, handed over through a single-use code
//! that only that host can redeem. Both are stored hashed.

use chrono::{DateTime, Duration, Utc};
use stackspin_domain::UserId;

use crate::{StorageError, Store, in_tx, with_pool, with_writer};

/// How long a hand-over code is good for.
pub const CODE_LIFETIME_SECONDS: i64 = 60;

/// Who a tool's session belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolSession {
    pub sid: String,
    pub user_id: UserId,
    pub expires_at: DateTime<Utc>,
}

/// Why a hand-over code was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeRefusal {
    /// Unknown, used, expired, or its Dashboard session ended.
    Invalid,
    /// Issued for another host (the code is burnt).
    OtherHost,
}

impl Store {
    /// Issues a hand-over code for `host`, tied to the Dashboard session `sid`.
    pub async fn issue_tool_code(
        &self,
        code_hash: &str,
        host: &str,
        sid: &str,
        return_path: &str,
    ) -> Result<(), StorageError> {
        let expires = Utc::now() + Duration::seconds(CODE_LIFETIME_SECONDS);
        with_writer!(self, pool => {
            sqlx::query(
                "INSERT INTO tool_codes (code_hash, host, sid, return_path, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(code_hash)
            .bind(host)
            .bind(sid)
            .bind(return_path)
            .bind(expires)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Redeems a code at `host`: consumed whatever the outcome, and turned into a tool
    /// session (stored as `token_hash`) only on the host it was issued for. Returns where to
    /// go back to.
    pub async fn redeem_tool_code(
        &self,
        code_hash: &str,
        host: &str,
        token_hash: &str,
    ) -> Result<Result<String, CodeRefusal>, StorageError> {
        let now = Utc::now();
        let out = in_tx!(self, tx, _d => {
            let row: Option<(String, String, String, DateTime<Utc>)> = sqlx::query_as(
                "DELETE FROM tool_codes WHERE code_hash = $1 \
                 RETURNING host, sid, return_path, expires_at",
            )
            .bind(code_hash)
            .fetch_optional(&mut *tx)
            .await?;
            match row {
                None => Err(CodeRefusal::Invalid),
                Some((h, _, _, _)) if h != host => Err(CodeRefusal::OtherHost),
                Some((_, _, _, exp)) if exp <= now => Err(CodeRefusal::Invalid),
                Some((_, sid, return_path, _)) => {
                    // The tool's session ends with the Dashboard session it came from.
                    let parent: Option<(DateTime<Utc>,)> = sqlx::query_as(
                        "SELECT expires_at FROM sessions WHERE sid = $1 AND expires_at > $2",
                    )
                    .bind(&sid)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                    match parent {
                        None => Err(CodeRefusal::Invalid),
                        Some((expires,)) => {
                            sqlx::query(
                                "INSERT INTO tool_sessions (token_hash, host, sid, expires_at) \
                                 VALUES ($1, $2, $3, $4)",
                            )
                            .bind(token_hash)
                            .bind(host)
                            .bind(&sid)
                            .bind(expires)
                            .execute(&mut *tx)
                            .await?;
                            Ok(return_path)
                        }
                    }
                }
            }
        });
        Ok(out)
    }

    /// The live session behind a tool's cookie on `host`: one lookup, joined with the
    /// Dashboard session it hangs off.
    pub async fn tool_session(
        &self,
        token_hash: &str,
        host: &str,
    ) -> Result<Option<ToolSession>, StorageError> {
        let now = Utc::now();
        let row: Option<(String, uuid::Uuid, DateTime<Utc>)> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT t.sid, s.user_id, t.expires_at FROM tool_sessions t \
                 JOIN sessions s ON s.sid = t.sid \
                 WHERE t.token_hash = $1 AND t.host = $2 AND t.expires_at > $3 \
                   AND s.expires_at > $3",
            )
            .bind(token_hash)
            .bind(host)
            .bind(now)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|(sid, user, expires_at)| ToolSession {
            sid,
            user_id: UserId(user),
            expires_at,
        }))
    }
}
