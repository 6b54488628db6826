-- Workspaces: declared in the configuration (source = 'config') or made through the API.
-- A workspace removed from the configuration is archived, not deleted, so its runs survive.
CREATE TABLE workspaces (
    id                   BIGSERIAL PRIMARY KEY,
    name                 TEXT    NOT NULL UNIQUE,
    repo                 TEXT    NOT NULL,
    branch               TEXT,
    working_directory    TEXT    NOT NULL DEFAULT '',
    trigger_patterns     TEXT    NOT NULL DEFAULT '[]',
    auto_apply           INTEGER NOT NULL DEFAULT 0,
    terraform_version    TEXT,
    speculative_enabled  INTEGER NOT NULL DEFAULT 1,
    source               TEXT    NOT NULL DEFAULT 'config',
    archived             INTEGER NOT NULL DEFAULT 0,
    created_at_ms        BIGINT  NOT NULL DEFAULT 0,
    updated_at_ms        BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX workspaces_by_repo ON workspaces (repo) WHERE archived = 0;

CREATE TABLE workspace_variables (
    workspace_id  BIGINT  NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    category      TEXT    NOT NULL,
    key           TEXT    NOT NULL,
    value         TEXT    NOT NULL,
    sensitive     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, category, key)
);
