-- A workspace never has two runs holding it (executing, or planned and waiting for
-- confirmation), enforced by the database itself: a second runner (another replica) that
-- tries to start a run while one holds the workspace fails on this index instead.
CREATE UNIQUE INDEX runs_one_active_per_workspace ON runs (workspace_id)
    WHERE speculative = 0
      AND state IN ('fetching', 'planning', 'planned', 'confirmed', 'applying');
