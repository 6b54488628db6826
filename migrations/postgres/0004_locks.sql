-- A workspace locked by hand starts no new run; queued runs wait, one under way finishes.
ALTER TABLE workspaces ADD COLUMN locked_by TEXT;
ALTER TABLE workspaces ADD COLUMN lock_reason TEXT;
ALTER TABLE workspaces ADD COLUMN locked_at_ms BIGINT;
