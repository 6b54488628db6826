-- A row being sent is leased to the worker sending it until lease_expires_ms; a row whose
-- worker died is taken again after that (by any replica), never while the lease is live.
ALTER TABLE outbox ADD COLUMN lease_expires_ms BIGINT;
