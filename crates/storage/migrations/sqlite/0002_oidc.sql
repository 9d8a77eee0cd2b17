-- OpenID Connect provider state: signing keys, login sessions, authorization codes, tokens,
-- the apps each session signed into, the back-channel logout outbox and the audit log.
-- Every secret handed to a browser or app (session cookie, code, token) is stored as its
-- SHA-256 only.

CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY NOT NULL,
    alg         TEXT NOT NULL CHECK (alg IN ('RS256', 'ES256')),
    private_key BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    -- Set when a newer key takes over signing; the key stays published in the JWKS until
    -- expires_at, when no token it signed can still be valid.
    retired_at  TEXT,
    expires_at  TEXT
);

CREATE TABLE sessions (
    token_hash   TEXT PRIMARY KEY NOT NULL,
    sid          TEXT NOT NULL UNIQUE,
    user_id      BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_time    TEXT NOT NULL,
    amr          TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    ip           TEXT,
    user_agent   TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Which apps each session has signed into: the apps to notify on logout.
CREATE TABLE session_apps (
    sid        TEXT NOT NULL REFERENCES sessions (sid) ON DELETE CASCADE,
    app_id     BLOB NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    first_at   TEXT NOT NULL,
    PRIMARY KEY (sid, app_id)
);
CREATE INDEX session_apps_app ON session_apps (app_id);

CREATE TABLE auth_codes (
    code_hash      TEXT PRIMARY KEY NOT NULL,
    app_id         BLOB NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    user_id        BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sid            TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    scope          TEXT NOT NULL,
    nonce          TEXT,
    code_challenge TEXT,
    auth_time      TEXT NOT NULL,
    amr            TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    used_at        TEXT
);

CREATE TABLE oauth_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    -- All tokens descending from one authorization code share a family, so reuse of a code
    -- or of a rotated refresh token can revoke them together.
    family_id  TEXT NOT NULL,
    app_id     BLOB NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sid        TEXT,
    scope      TEXT NOT NULL,
    auth_time  TEXT NOT NULL,
    amr        TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT,
    revoked_at TEXT
);
CREATE INDEX oauth_tokens_family ON oauth_tokens (family_id);
CREATE INDEX oauth_tokens_user_app ON oauth_tokens (user_id, app_id);
CREATE INDEX oauth_tokens_sid ON oauth_tokens (sid);

-- Logout notifications still to deliver to apps. Written in the same transaction as the
-- change that causes them (logout, role change, deletion, password reset), so none is lost
-- and the admin CLI triggers them as the server does; a worker in `serve` signs and delivers.
CREATE TABLE backchannel_outbox (
    id              BLOB PRIMARY KEY NOT NULL,
    app_id          BLOB NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    sub             TEXT NOT NULL,
    sid             TEXT,
    reason          TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    delivered_at    TEXT,
    failed_at       TEXT,
    last_error      TEXT
);
CREATE INDEX backchannel_outbox_due ON backchannel_outbox (next_attempt_at);

CREATE TABLE audit_events (
    id         BLOB PRIMARY KEY NOT NULL,
    at         TEXT NOT NULL,
    kind       TEXT NOT NULL,
    actor      TEXT,
    user_id    BLOB,
    user_email TEXT,
    app        TEXT,
    ip         TEXT,
    detail     TEXT NOT NULL
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_user ON audit_events (user_id);

-- The algorithm each app wants its ID tokens signed with.
ALTER TABLE apps ADD COLUMN id_token_alg TEXT NOT NULL DEFAULT 'RS256' CHECK (id_token_alg IN ('RS256', 'ES256'));
