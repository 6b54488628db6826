-- Pull requests: speculative plans, and every side effect on GitHub through a durable outbox.

-- A speculative plan belongs to a pull request; a retry names the run it retries.
ALTER TABLE runs ADD COLUMN pr_number BIGINT;
ALTER TABLE runs ADD COLUMN retry_of BIGINT;
-- Whether the plan found changes (outputs included), beside its counts.
ALTER TABLE runs ADD COLUMN plan_has_changes INTEGER;
CREATE INDEX runs_speculative_pending ON runs (id) WHERE speculative = 1 AND state = 'pending';
CREATE INDEX runs_by_pull_request ON runs (pr_number, id) WHERE speculative = 1;

-- What Gantry must still tell GitHub. A row is written in the transaction that makes it
-- necessary and sent afterwards, with retries; one pending row per (kind, key) coalesces a
-- burst of changes into one request.
CREATE TABLE outbox (
    id                  BIGSERIAL PRIMARY KEY,
    -- run_status | raw_status | pr_comment | reaction | reply
    kind                TEXT    NOT NULL,
    key                 TEXT    NOT NULL,
    payload             TEXT    NOT NULL,
    -- pending | sending | sent | failed
    state               TEXT    NOT NULL DEFAULT 'pending',
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_ms  BIGINT  NOT NULL DEFAULT 0,
    last_error          TEXT,
    created_at_ms       BIGINT  NOT NULL
);
CREATE UNIQUE INDEX outbox_one_pending ON outbox (kind, key) WHERE state = 'pending';
CREATE INDEX outbox_due ON outbox (next_attempt_at_ms, id) WHERE state = 'pending';

-- What each commit status context shows now, and for which run: a status is posted only when
-- it changes, and an older run never overwrites a newer run's status.
CREATE TABLE commit_statuses (
    repo         TEXT    NOT NULL,
    sha          TEXT    NOT NULL,
    context      TEXT    NOT NULL,
    run_id       BIGINT ,
    state        TEXT    NOT NULL,
    description  TEXT    NOT NULL,
    target_url   TEXT,
    PRIMARY KEY (repo, sha, context)
);

-- The one Gantry comment on each pull request.
CREATE TABLE pr_comments (
    repo        TEXT    NOT NULL,
    pr_number   BIGINT  NOT NULL,
    comment_id  BIGINT  NOT NULL,
    PRIMARY KEY (repo, pr_number)
);
ALTER TABLE workspaces ADD COLUMN plan_forks INTEGER NOT NULL DEFAULT 0;
