-- Configuration versions: a repository at a commit, shared by every run made from it.
CREATE TABLE configuration_versions (
    id             INTEGER PRIMARY KEY,
    repo           TEXT    NOT NULL,
    commit_sha     TEXT    NOT NULL,
    created_at_ms  INTEGER NOT NULL DEFAULT 0,
    UNIQUE (repo, commit_sha)
);

-- Runs. A run is pinned at creation to its configuration version and (run_variables) to a
-- snapshot of its workspace's variables.
CREATE TABLE runs (
    id                        INTEGER PRIMARY KEY,
    workspace_id              INTEGER NOT NULL REFERENCES workspaces (id),
    configuration_version_id  INTEGER NOT NULL REFERENCES configuration_versions (id),
    commit_sha                TEXT    NOT NULL,
    speculative               INTEGER NOT NULL DEFAULT 0,
    state                     TEXT    NOT NULL DEFAULT 'pending',
    -- push | pull_request | api | retry
    source                    TEXT    NOT NULL,
    delivery_id               TEXT,
    created_at_ms             INTEGER NOT NULL DEFAULT 0,
    updated_at_ms             INTEGER NOT NULL DEFAULT 0
);
-- A commit runs at most once per workspace (a redelivered or re-pushed commit adds nothing).
CREATE UNIQUE INDEX runs_one_per_commit ON runs (workspace_id, commit_sha) WHERE speculative = 0;
CREATE INDEX runs_queue ON runs (workspace_id, id) WHERE speculative = 0;

-- Every state a run entered, with when.
CREATE TABLE run_events (
    id      INTEGER PRIMARY KEY,
    run_id  INTEGER NOT NULL REFERENCES runs (id),
    state   TEXT    NOT NULL,
    at_ms   INTEGER NOT NULL,
    detail  TEXT
);
CREATE INDEX run_events_by_run ON run_events (run_id);

CREATE TABLE run_variables (
    run_id     INTEGER NOT NULL REFERENCES runs (id),
    category   TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    sensitive  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, category, key)
);
