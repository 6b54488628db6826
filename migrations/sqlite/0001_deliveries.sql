-- Webhook deliveries, stored before Gantry answers GitHub, processed afterwards in `seq` order.
CREATE TABLE deliveries (
    -- A rowid alias: new rows take max(seq) + 1, so seq is the order of arrival.
    seq              INTEGER PRIMARY KEY,
    delivery_id      TEXT    NOT NULL UNIQUE,
    event            TEXT    NOT NULL,
    action           TEXT,
    installation_id  INTEGER,
    repository       TEXT,
    payload          BLOB    NOT NULL,
    received_at_ms   INTEGER NOT NULL,
    -- pending | processed | ignored | failed
    status           TEXT    NOT NULL DEFAULT 'pending',
    outcome_detail   TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms  INTEGER NOT NULL DEFAULT 0,
    processed_at_ms  INTEGER
);
CREATE INDEX deliveries_pending ON deliveries (seq) WHERE status = 'pending';

-- Where the GitHub App is installed, kept from installation events.
CREATE TABLE installations (
    id             INTEGER PRIMARY KEY,
    account_login  TEXT    NOT NULL,
    account_type   TEXT    NOT NULL DEFAULT 'User',
    suspended      INTEGER NOT NULL DEFAULT 0,
    updated_at_ms  INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE installation_repositories (
    installation_id  INTEGER NOT NULL REFERENCES installations (id) ON DELETE CASCADE,
    full_name        TEXT    NOT NULL,
    PRIMARY KEY (installation_id, full_name)
);
