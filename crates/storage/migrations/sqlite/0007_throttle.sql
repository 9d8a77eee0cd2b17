-- Attempt counters shared by every replica: one row per key (account and client, client,
-- known device...), counting attempts since window_start (Unix seconds).
CREATE TABLE throttle_counters (
    key          TEXT PRIMARY KEY NOT NULL,
    window_start INTEGER NOT NULL,
    count        INTEGER NOT NULL
);
CREATE INDEX throttle_counters_window ON throttle_counters (window_start);

-- Browsers that have signed in to an account before: the cookie's SHA-256 only.
CREATE TABLE known_devices (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL
);
CREATE INDEX known_devices_user ON known_devices (user_id);

-- Facts `serve` records for the admin commands (the public URL it serves, for one).
CREATE TABLE server_facts (
    name  TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
