-- Users, registered apps and per-app roles. UUIDs are 16-byte BLOBs, timestamps RFC 3339 text
-- (sqlx's encodings), booleans 0/1.
CREATE TABLE users (
    id            BLOB PRIMARY KEY NOT NULL,
    email         TEXT NOT NULL,
    name          TEXT NOT NULL,
    password_hash TEXT,
    is_admin      INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
-- Addresses are unique regardless of case.
CREATE UNIQUE INDEX users_email_lower ON users (lower(email));

CREATE TABLE apps (
    id                        BLOB PRIMARY KEY NOT NULL,
    name                      TEXT NOT NULL UNIQUE,
    display_name              TEXT NOT NULL,
    url                       TEXT NOT NULL,
    client_id                 TEXT NOT NULL UNIQUE,
    client_secret_hash        TEXT,
    redirect_uris             TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL,
    backchannel_logout_uri    TEXT,
    default_role              TEXT NOT NULL DEFAULT 'user' CHECK (default_role IN ('admin', 'user', 'none')),
    created_at                TEXT NOT NULL,
    updated_at                TEXT NOT NULL
);

CREATE TABLE user_app_roles (
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    app_id     BLOB NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'user', 'none')),
    updated_at TEXT NOT NULL,
    PRIMARY KEY (user_id, app_id)
);
CREATE INDEX user_app_roles_app ON user_app_roles (app_id);

-- The generated credentials of the first admin, kept so `stackspin admin-credentials` can show
-- them (as the seed's cluster secret does). One row at most.
CREATE TABLE setup_credentials (
    id         INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email      TEXT NOT NULL,
    password   TEXT NOT NULL,
    created_at TEXT NOT NULL
);
