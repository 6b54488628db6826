-- Off: the workspace's Terraform runs with no network at all (a sandbox of its own network).
ALTER TABLE workspaces ADD COLUMN network INTEGER NOT NULL DEFAULT 1;
