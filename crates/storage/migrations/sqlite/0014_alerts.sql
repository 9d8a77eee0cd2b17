-- Alerts as Alertmanager delivers them to serve's webhook: one row per alert (its
-- fingerprint), the current episode's start and end, and whether the admin was mailed about
-- it, so a repeated delivery never mails twice and a new episode mails again.
CREATE TABLE alerts (
    fingerprint TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    severity    TEXT NOT NULL,
    summary     TEXT NOT NULL,
    description TEXT NOT NULL,
    action      TEXT NOT NULL,
    link        TEXT NOT NULL,
    labels      TEXT NOT NULL,
    starts_at   TEXT NOT NULL,
    resolved_at TEXT,
    updated_at  TEXT NOT NULL,
    mailed_at   TEXT
);

-- What the operator last saw of the cluster for the Status page (the web layer never talks
-- to Kubernetes): one JSON document per kind (nodes, certificates).
CREATE TABLE cluster_observations (
    kind        TEXT PRIMARY KEY NOT NULL,
    body        TEXT NOT NULL,
    observed_at TEXT NOT NULL
);
