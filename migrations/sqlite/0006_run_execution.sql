-- What executing a run needs and leaves behind.

-- The installation a configuration version is fetched with, and the archive once fetched
-- (content-addressed: the SHA-256 of the tarball names its blob in the data dir).
ALTER TABLE configuration_versions ADD COLUMN installation_id INTEGER;
ALTER TABLE configuration_versions ADD COLUMN archive_sha256 TEXT;

-- The plan summary (what `show -json` of the saved plan counts), and why a run errored.
ALTER TABLE runs ADD COLUMN plan_add INTEGER;
ALTER TABLE runs ADD COLUMN plan_change INTEGER;
ALTER TABLE runs ADD COLUMN plan_destroy INTEGER;
ALTER TABLE runs ADD COLUMN resource_changes TEXT;
ALTER TABLE runs ADD COLUMN error TEXT;
-- The runs the scheduler looks at: those not finished, per workspace in queue order.
CREATE INDEX runs_active ON runs (workspace_id, id)
    WHERE state NOT IN ('applied', 'planned_and_finished', 'errored', 'discarded', 'canceled', 'force_canceled');

-- A run's output, in chunks as it came (masked), so that a reader can follow it live.
CREATE TABLE run_logs (
    id      INTEGER PRIMARY KEY,
    run_id  INTEGER NOT NULL REFERENCES runs (id),
    -- plan | apply
    phase   TEXT    NOT NULL,
    chunk   TEXT    NOT NULL,
    at_ms   INTEGER NOT NULL
);
CREATE INDEX run_logs_by_run ON run_logs (run_id, phase, id);

-- Each workspace's Terraform state, one row per version.
CREATE TABLE state_versions (
    id             INTEGER PRIMARY KEY,
    workspace_id   INTEGER NOT NULL REFERENCES workspaces (id),
    serial         INTEGER NOT NULL,
    lineage        TEXT    NOT NULL,
    checksum       TEXT    NOT NULL,
    state          BLOB    NOT NULL,
    run_id         INTEGER REFERENCES runs (id),
    created_at_ms  INTEGER NOT NULL,
    UNIQUE (workspace_id, serial)
);

-- API tokens: only a hash is kept; the token is shown once, when made.
CREATE TABLE api_tokens (
    id             INTEGER PRIMARY KEY,
    name           TEXT    NOT NULL UNIQUE,
    -- read | write | admin
    role           TEXT    NOT NULL,
    token_sha256   TEXT    NOT NULL UNIQUE,
    created_at_ms  INTEGER NOT NULL
);
