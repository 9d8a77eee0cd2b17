-- Backups as the operator last saw them in Velero, plus the ones asked for that Velero has not
-- made yet ('requested'). The operator is the only writer of phases and figures.
CREATE TABLE backups (
    name          TEXT PRIMARY KEY NOT NULL,
    -- NULL: the whole platform (the nightly schedule, or "back up now" without an app).
    app           TEXT,
    -- Why it was made: 'scheduled', 'manual', 'safety' (before a restore), 'update' (before an
    -- automatic update), 'drill'.
    reason        TEXT NOT NULL,
    -- 'requested', then Velero's phase: 'new', 'in_progress', 'completed', 'partially_failed',
    -- 'failed', 'deleting'; 'gone' when Velero no longer has it.
    phase         TEXT NOT NULL,
    message       TEXT NOT NULL DEFAULT '',
    -- The apps it holds (comma-separated), as installed when it was made.
    apps          TEXT NOT NULL DEFAULT '',
    items         BIGINT NOT NULL DEFAULT 0,
    bytes         BIGINT NOT NULL DEFAULT 0,
    errors        BIGINT NOT NULL DEFAULT 0,
    warnings      BIGINT NOT NULL DEFAULT 0,
    requested_by  TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    started_at    TIMESTAMPTZ,
    completed_at  TIMESTAMPTZ,
    expires_at    TIMESTAMPTZ
);
CREATE INDEX backups_created ON backups (created_at);

-- Per-app restores: a recorded state machine the operator drives one step at a time, so a
-- restart resumes where it stopped.
CREATE TABLE restores (
    id             BIGSERIAL PRIMARY KEY,
    app            TEXT NOT NULL,
    backup         TEXT NOT NULL,
    safety_backup  TEXT,
    -- 'safety_backup', 'suspend', 'remove', 'restore', 'resume', 'wait_ready', 'done'
    step           TEXT NOT NULL,
    -- 'running', 'done', 'failed'
    state          TEXT NOT NULL,
    message        TEXT NOT NULL DEFAULT '',
    -- 1 while running, NULL after: the unique constraint lets one restore run at a time.
    active         INTEGER UNIQUE,
    requested_by   TEXT,
    requested_at   TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    finished_at    TIMESTAMPTZ
);

-- What each restore did, step by step, for the command, the API and the Dashboard.
CREATE TABLE restore_events (
    restore_id  BIGINT NOT NULL REFERENCES restores (id) ON DELETE CASCADE,
    at          TIMESTAMPTZ NOT NULL,
    step        TEXT NOT NULL,
    message     TEXT NOT NULL
);
CREATE INDEX restore_events_restore ON restore_events (restore_id, at);
