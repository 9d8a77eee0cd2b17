-- Account self-service and MFA: single-use links (password reset, invitation), the outgoing
-- mail queue, TOTP enrolment with replay protection, recovery codes and platform settings.

CREATE TABLE user_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL CHECK (purpose IN ('reset', 'invite')),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
);
CREATE INDEX user_tokens_user ON user_tokens (user_id);

-- Mail waits here until the SMTP server accepts it, so a mail server outage loses nothing.
-- The body is cleared once sent: it may carry a single-use link.
CREATE TABLE mail_outbox (
    id              BLOB PRIMARY KEY NOT NULL,
    to_address      TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    sent_at         TEXT,
    failed_at       TEXT,
    last_error      TEXT
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at);

ALTER TABLE users ADD COLUMN totp_secret TEXT;
-- The last accepted TOTP time step: a code is accepted at most once (RFC 6238 §5.2).
ALTER TABLE users ADD COLUMN totp_last_step BIGINT;

CREATE TABLE recovery_codes (
    user_id   BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at   TEXT,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE settings (
    key        TEXT PRIMARY KEY NOT NULL,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
