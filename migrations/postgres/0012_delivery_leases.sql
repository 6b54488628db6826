-- Several replicas share the dispatching: a replica leases the deliveries it takes (until
-- lease_expires_ms); another takes them over only once the lease has expired (the replica
-- died). Closing stays guarded by status = 'pending', so effects are applied once even if a
-- lease expired while its holder was still working.
ALTER TABLE deliveries ADD COLUMN lease_owner TEXT;
ALTER TABLE deliveries ADD COLUMN lease_expires_ms BIGINT;
