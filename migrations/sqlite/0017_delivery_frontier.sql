-- The dispatcher finds new deliveries by walking the table in seq order from a frontier, so
-- ingest writes no index of pending deliveries: each one cost every ingest commit a page of the
-- write-ahead log. Every delivery before the frontier is closed or waits for a retry
-- (next_attempt_ms > 0); those are found through indexes that a new delivery never enters.
-- A new delivery's seq is max(seq) + 1 (deliveries are never deleted), never behind the frontier.
CREATE TABLE delivery_frontier (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL
);
INSERT INTO delivery_frontier (id, seq) VALUES (1, COALESCE(
    (SELECT MIN(seq) FROM deliveries WHERE status = 'pending' AND next_attempt_ms = 0),
    (SELECT MAX(seq) + 1 FROM deliveries),
    0));
-- Deliveries waiting for a retry, by when it is due.
CREATE INDEX deliveries_retry_due ON deliveries (next_attempt_ms, seq)
    WHERE status = 'pending' AND next_attempt_ms > 0;
DROP INDEX deliveries_pending;
