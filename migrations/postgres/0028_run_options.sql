-- What a person asked of a run: its plan's options (a JSON object: destroy, refresh_only,
-- targets, replaces) and a message.
ALTER TABLE runs ADD COLUMN plan_options TEXT NOT NULL DEFAULT '{}';
ALTER TABLE runs ADD COLUMN message TEXT NOT NULL DEFAULT '';
