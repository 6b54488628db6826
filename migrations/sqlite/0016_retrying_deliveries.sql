-- The dispatcher's ordering check (is an earlier delivery of this repository waiting for a
-- retry?) needs only the deliveries waiting for a retry. An index of just those is not written
-- by ingest, since a new delivery has next_attempt_ms = 0; the index of every pending delivery
-- by repository that it replaces cost each ingest commit a page of the write-ahead log.
DROP INDEX deliveries_pending_by_repository;
CREATE INDEX deliveries_retrying ON deliveries (repository, seq)
    WHERE status = 'pending' AND next_attempt_ms > 0;
