-- Sessions of tools behind the ingress's forward-auth (Prometheus, Alertmanager, an admin's
-- internal web tool): each bound to one host and to the Dashboard session it was handed over
-- from, so signing out of the Dashboard (or losing the account) ends it.
CREATE TABLE tool_sessions (
    token_hash  TEXT PRIMARY KEY NOT NULL,
    host        TEXT NOT NULL,
    sid         TEXT NOT NULL REFERENCES sessions (sid) ON DELETE CASCADE,
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX tool_sessions_sid ON tool_sessions (sid);

-- Single-use hand-over codes from the Dashboard to a tool's host: valid for that host only,
-- for a minute; where to return to is kept here, not in the URL.
CREATE TABLE tool_codes (
    code_hash    TEXT PRIMARY KEY NOT NULL,
    host         TEXT NOT NULL,
    sid          TEXT NOT NULL REFERENCES sessions (sid) ON DELETE CASCADE,
    return_path  TEXT NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL
);
