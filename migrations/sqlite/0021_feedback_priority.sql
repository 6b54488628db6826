-- Results first: an outbox row's priority (0 a result people wait for, 1 an in-between state
-- or the PR comment, held briefly so that a result following at once replaces it, 2 a
-- workspace a change does not touch), and the PR comment's last body, to edit it only when
-- it changed.
ALTER TABLE outbox ADD COLUMN priority INTEGER NOT NULL DEFAULT 1;
CREATE INDEX outbox_by_priority ON outbox (priority, id) WHERE state = 'pending';
ALTER TABLE pr_comments ADD COLUMN body_sha256 TEXT;
-- What the `gantry` aggregate check run last showed, to update it only when that changed.
ALTER TABLE raw_checks ADD COLUMN shown TEXT;
