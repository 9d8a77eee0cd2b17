-- Catalog apps the admin wants on the cluster (desired state, written by the Dashboard, the
-- API and the CLI) and what the operator last saw of them (status, written by the operator).
CREATE TABLE installed_apps (
    name            TEXT PRIMARY KEY NOT NULL,
    -- NULL: the catalog's subdomain; '' the bare domain (where the entry allows it).
    subdomain       TEXT,
    auto_update     INTEGER NOT NULL,
    -- The chart version the HelmRelease asks for: moved forward only by the operator, inside
    -- the maintenance window or when an admin asks for an update now.
    target_version  TEXT NOT NULL,
    -- 'install' or 'uninstall' (the row is deleted once the release is gone).
    desired         TEXT NOT NULL,
    purge           INTEGER NOT NULL DEFAULT 0,
    update_now      INTEGER NOT NULL DEFAULT 0,
    state           TEXT NOT NULL,
    reason          TEXT NOT NULL DEFAULT '',
    running_version TEXT,
    latest_version  TEXT,
    requested_at    TEXT NOT NULL,
    status_at       TEXT
);

-- Secrets generated once per app (database passwords, OIDC client secrets), sealed with the
-- platform key; never regenerated or overwritten.
CREATE TABLE generated_secrets (
    app   TEXT NOT NULL,
    name  TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (app, name)
);
