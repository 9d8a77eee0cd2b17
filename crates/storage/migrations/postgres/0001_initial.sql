-- Users, registered apps and per-app roles (see the SQLite twin for the same shape).
CREATE TABLE users (
    id            UUID PRIMARY KEY,
    email         TEXT NOT NULL,
    name          TEXT NOT NULL,
    password_hash TEXT,
    is_admin      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX users_email_lower ON users (lower(email));

CREATE TABLE apps (
    id                        UUID PRIMARY KEY,
    name                      TEXT NOT NULL UNIQUE,
    display_name              TEXT NOT NULL,
    url                       TEXT NOT NULL,
    client_id                 TEXT NOT NULL UNIQUE,
    client_secret_hash        TEXT,
    redirect_uris             TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL,
    backchannel_logout_uri    TEXT,
    default_role              TEXT NOT NULL DEFAULT 'user' CHECK (default_role IN ('admin', 'user', 'none')),
    created_at                TIMESTAMPTZ NOT NULL,
    updated_at                TIMESTAMPTZ NOT NULL
);

CREATE TABLE user_app_roles (
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    app_id     UUID NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'user', 'none')),
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, app_id)
);
CREATE INDEX user_app_roles_app ON user_app_roles (app_id);

CREATE TABLE setup_credentials (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email      TEXT NOT NULL,
    password   TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
