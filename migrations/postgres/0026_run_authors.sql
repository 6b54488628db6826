-- Who caused a run (the GitHub login that pushed or opened the pull request, or the API
-- token's name): a policy set with prevent_self_override keeps them from overriding it.
ALTER TABLE runs ADD COLUMN author TEXT NOT NULL DEFAULT '';
