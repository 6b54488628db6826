-- Who did what to a workspace (locks and unlocks), with the token's or person's name: the
-- workspace's audit trail beside its runs' own events.
CREATE TABLE workspace_events (
    id            BIGSERIAL PRIMARY KEY,
    workspace_id  BIGINT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    action        TEXT    NOT NULL,
    actor         TEXT    NOT NULL,
    detail        TEXT    NOT NULL DEFAULT '',
    at_ms         BIGINT NOT NULL
);
CREATE INDEX workspace_events_by_workspace ON workspace_events (workspace_id, id);
