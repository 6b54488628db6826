-- Which server (replica) executes a run, and when it last said it still does: a replica
-- applies only the runs it planned (the plan file is on its disk), and another replica
-- errors a run whose server stopped saying so (it died), so that the queue moves on.
ALTER TABLE runs ADD COLUMN runner_owner TEXT;
ALTER TABLE runs ADD COLUMN heartbeat_ms INTEGER;
