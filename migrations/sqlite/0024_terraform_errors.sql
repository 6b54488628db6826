-- Terraform's first error line of an errored run, kept when the run ends: the reason every
-- place shows (the commit status, the check run, the PR comment, the API and the UI).
ALTER TABLE runs ADD COLUMN terraform_error TEXT;
