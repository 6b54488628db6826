-- Configuration versions uploaded through the API (the API-driven workflow): the tarball is
-- kept in the database, so that any replica can run it.
ALTER TABLE configuration_versions ADD COLUMN uploaded INTEGER NOT NULL DEFAULT 0;
ALTER TABLE configuration_versions ADD COLUMN archive BYTEA;

-- A pushed commit still runs once per workspace, but a retry or an API run of the same
-- commit is a new run of its own.
DROP INDEX runs_one_per_commit;
CREATE UNIQUE INDEX runs_one_per_commit ON runs (workspace_id, commit_sha)
    WHERE speculative = 0 AND source = 'push';
