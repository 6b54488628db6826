-- Finds a repository's earlier pending deliveries quickly (order is kept per repository).
CREATE INDEX deliveries_pending_by_repository ON deliveries (repository, seq) WHERE status = 'pending';
