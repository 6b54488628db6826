-- A row whose earlier try may have reached GitHub without being recorded (its sender died, or
-- GitHub did not answer): before sending it again, Gantry asks GitHub what it shows.
ALTER TABLE outbox ADD COLUMN in_doubt BOOLEAN NOT NULL DEFAULT FALSE;
