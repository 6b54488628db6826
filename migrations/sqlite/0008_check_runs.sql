-- The GitHub check run of each run, once created, and what it last showed.
ALTER TABLE runs ADD COLUMN check_run_id INTEGER;
ALTER TABLE runs ADD COLUMN check_run_shown TEXT;
