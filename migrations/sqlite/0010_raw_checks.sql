-- Check runs not tied to a run (a fork waiting for approval), by commit and name.
CREATE TABLE raw_checks (
    repo          TEXT    NOT NULL,
    sha           TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    check_run_id  INTEGER NOT NULL,
    PRIMARY KEY (repo, sha, name)
);
