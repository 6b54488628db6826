-- Notification configurations (Terraform Cloud's): per workspace, from the configuration file
-- or the API. token: sealed like sensitive variables ('' when unsigned); triggers: a JSON
-- list; status: unverified, verified or failed (status_detail says why). Run notifications go
-- only to enabled, verified ones.
CREATE TABLE notification_configurations (
    id             INTEGER PRIMARY KEY,
    workspace_id   INTEGER NOT NULL REFERENCES workspaces (id),
    name           TEXT    NOT NULL,
    destination    TEXT    NOT NULL,
    url            TEXT    NOT NULL,
    token          TEXT    NOT NULL DEFAULT '',
    triggers       TEXT    NOT NULL DEFAULT '[]',
    enabled        INTEGER NOT NULL DEFAULT 1,
    source         TEXT    NOT NULL DEFAULT 'api',
    status         TEXT    NOT NULL DEFAULT 'unverified',
    status_detail  TEXT    NOT NULL DEFAULT '',
    updated_at_ms  INTEGER NOT NULL,
    UNIQUE (workspace_id, name)
);

-- The last answers to each configuration's deliveries (a few are kept).
CREATE TABLE notification_deliveries (
    id                INTEGER PRIMARY KEY,
    configuration_id  INTEGER NOT NULL REFERENCES notification_configurations (id),
    trigger_name      TEXT    NOT NULL,
    run_id            INTEGER,
    status            INTEGER,
    success           INTEGER NOT NULL,
    detail            TEXT    NOT NULL,
    at_ms             INTEGER NOT NULL
);
CREATE INDEX notification_deliveries_by_configuration
    ON notification_deliveries (configuration_id, id);
