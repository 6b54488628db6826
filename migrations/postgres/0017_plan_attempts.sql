-- How many times a run's plan was started again after Gantry or its supervisor stopped during it
-- (at most 3 tries in all, then the run errors).
ALTER TABLE runs ADD COLUMN plan_attempts INTEGER NOT NULL DEFAULT 0;
