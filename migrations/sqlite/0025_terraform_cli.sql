-- The Terraform CLI's side of workspaces (the TFE API): where a workspace's runs execute
-- (`remote` in Gantry, or `local`: Gantry keeps only the state and its lock), the tags a
-- `cloud` block selects workspaces by (a JSON list), and who wrote a state version that no
-- run wrote (`terraform state push`, a migration, a local apply). A workspace with repo ''
-- is connected to no repository: the CLI uploads what it runs.
ALTER TABLE workspaces ADD COLUMN execution_mode TEXT NOT NULL DEFAULT 'remote';
ALTER TABLE workspaces ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
ALTER TABLE state_versions ADD COLUMN created_by TEXT;
-- A run that applies its plan without confirmation (`terraform apply -auto-approve`), whatever
-- its workspace's setting.
ALTER TABLE runs ADD COLUMN auto_apply INTEGER NOT NULL DEFAULT 0;
-- A configuration version the CLI made for a plan only: its runs are speculative.
ALTER TABLE configuration_versions ADD COLUMN speculative INTEGER NOT NULL DEFAULT 0;
-- The workspace a CLI's configuration version was made for: its runs run there only.
ALTER TABLE configuration_versions ADD COLUMN workspace_id INTEGER;

-- A state version the CLI announced and uploads next (Terraform 1.6+ sends the state to an
-- upload URL after it creates the version); it becomes a state version when the upload
-- arrives, if the state is the one announced.
CREATE TABLE state_uploads (
    id             INTEGER PRIMARY KEY,
    workspace_id   INTEGER NOT NULL REFERENCES workspaces (id),
    serial         INTEGER NOT NULL,
    lineage        TEXT    NOT NULL,
    md5            TEXT    NOT NULL,
    force          INTEGER NOT NULL DEFAULT 0,
    created_by     TEXT    NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    -- The state version the upload became.
    state_version_id INTEGER REFERENCES state_versions (id)
);
