-- Configuration versions uploaded through the API (the API-driven workflow): the tarball is
-- kept in the database, so that any replica can run it.
ALTER TABLE configuration_versions ADD COLUMN uploaded INTEGER NOT NULL DEFAULT 0;
ALTER TABLE configuration_versions ADD COLUMN archive BYTEA;

-- A pushed commit still runs once per workspace, but a retry or an API run of the same
-- commit is a new run of its own.
DROP INDEX runs_one_per_commit;
CREATE UNIQUE INDEX runs_one_per_commit ON runs (workspace_id, commit_sha)
    WHERE speculative = 0 AND source = 'push';

-- A run is retried once: a second retry (sent twice, or two people at once) makes nothing.
UPDATE runs SET retry_of = NULL
    WHERE retry_of IS NOT NULL
      AND id NOT IN (SELECT MIN(id) FROM runs WHERE retry_of IS NOT NULL GROUP BY retry_of);
CREATE UNIQUE INDEX runs_one_retry ON runs (retry_of) WHERE retry_of IS NOT NULL;
