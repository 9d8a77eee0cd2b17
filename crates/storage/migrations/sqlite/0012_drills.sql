-- Restore drills: each restores the latest backup of every app into a scratch namespace and
-- checks what came back. `apps` is the plan and the results as JSON (one entry per app).
CREATE TABLE drills (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    -- 'running', 'passed', 'failed'
    state        TEXT NOT NULL,
    apps         TEXT NOT NULL,
    message      TEXT NOT NULL DEFAULT '',
    started_at   TEXT NOT NULL,
    finished_at  TEXT
);
