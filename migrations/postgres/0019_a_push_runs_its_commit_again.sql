-- A commit runs again in a workspace when a new push makes it the branch's tip again (a forced
-- push rolling the branch back); only the same push handled again makes no second run. The
-- store also skips a push whose commit is already the workspace's latest pushed run.
DROP INDEX runs_one_per_commit;
CREATE UNIQUE INDEX runs_one_per_push ON runs (workspace_id, commit_sha, delivery_id)
    WHERE speculative = 0 AND source = 'push';
