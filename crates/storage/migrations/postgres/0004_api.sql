-- Admin API tokens (stored as SHA-256) for `Authorization: Bearer` calls to /api/v1. A token
-- acts with its creator's rights: if the creator is deleted it goes with them, if demoted it
-- stops working.
CREATE TABLE api_tokens (
    token_hash   TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL,
    user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);
CREATE INDEX users_created_at ON users (created_at);
