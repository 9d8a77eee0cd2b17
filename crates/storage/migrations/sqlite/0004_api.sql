-- Admin API tokens (stored as SHA-256) for `Authorization: Bearer` calls to /api/v1. A token
-- acts with its creator's rights: if the creator is deleted it goes with them, if demoted it
-- stops working.
CREATE TABLE api_tokens (
    token_hash   TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL,
    user_id      BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);
CREATE INDEX users_created_at ON users (created_at);
