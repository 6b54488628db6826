-- What each policy said about a run's plan (one row a policy; a plan made again replaces
-- its run's rows). result: passed, failed or errored; messages: the violations (or the
-- error), a JSON list.
CREATE TABLE policy_checks (
    id             BIGSERIAL PRIMARY KEY,
    run_id         BIGINT NOT NULL REFERENCES runs (id),
    policy_set     TEXT    NOT NULL,
    policy         TEXT    NOT NULL,
    enforcement    TEXT    NOT NULL,
    result         TEXT    NOT NULL,
    messages       TEXT    NOT NULL,
    created_at_ms  BIGINT NOT NULL
);
CREATE INDEX policy_checks_by_run ON policy_checks (run_id);
