-- Run triggers: a workspace names the workspaces whose applies queue a run in it (a JSON list
-- of names), and whether such runs may apply by themselves; a run keeps the run that
-- triggered it.
ALTER TABLE workspaces ADD COLUMN run_triggers TEXT NOT NULL DEFAULT '[]';
ALTER TABLE workspaces ADD COLUMN auto_apply_run_trigger INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN triggered_by INTEGER REFERENCES runs (id);
CREATE INDEX runs_by_trigger ON runs (triggered_by) WHERE triggered_by IS NOT NULL;
