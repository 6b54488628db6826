-- Outbox rows are typed messages now: a row's payload holds all its fields. Rows still to send
-- that named their run or pull request only in their key get those fields in their payload.
UPDATE outbox SET payload = '{"run_id":' || key || '}'
WHERE kind IN ('run_status', 'run_check') AND state IN ('pending', 'sending');
UPDATE outbox SET payload = '{"repo":"' || split_part(key, '#', 1)
    || '","pr_number":' || split_part(key, '#', 2) || '}'
WHERE kind = 'pr_comment' AND state IN ('pending', 'sending');
