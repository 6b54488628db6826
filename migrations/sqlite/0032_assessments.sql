-- Health assessments (drift detection). Per workspace: on or off, how often (seconds), the
-- number of its open drift issue on GitHub (NULL: none open), and when someone asked for an
-- assessment now (NULL: nobody is waiting for one).
ALTER TABLE workspaces ADD COLUMN assessments INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workspaces ADD COLUMN assessment_interval_secs INTEGER NOT NULL DEFAULT 86400;
ALTER TABLE workspaces ADD COLUMN drift_issue INTEGER;
ALTER TABLE workspaces ADD COLUMN assessment_requested_at_ms INTEGER;

-- One refresh-only plan of a workspace's latest applied configuration. status: running,
-- finished (findings: core::assessments::Findings as JSON), errored (error says why) or
-- canceled (a run started, or Gantry stopped: it does not count as an assessment). log: its
-- Terraform output, masked. owner/heartbeat_at_ms: the server running it.
CREATE TABLE assessments (
    id                        INTEGER PRIMARY KEY,
    workspace_id              INTEGER NOT NULL REFERENCES workspaces (id),
    run_id                    INTEGER NOT NULL,
    status                    TEXT    NOT NULL DEFAULT 'running',
    findings                  TEXT    NOT NULL DEFAULT '{}',
    error                     TEXT    NOT NULL DEFAULT '',
    log                       TEXT    NOT NULL DEFAULT '',
    owner                     TEXT    NOT NULL DEFAULT '',
    heartbeat_at_ms           INTEGER NOT NULL,
    created_at_ms             INTEGER NOT NULL,
    finished_at_ms            INTEGER
);
CREATE INDEX assessments_by_workspace ON assessments (workspace_id, id);
-- At most one running assessment per workspace, whichever server starts it.
CREATE UNIQUE INDEX assessments_one_running ON assessments (workspace_id) WHERE status = 'running';
