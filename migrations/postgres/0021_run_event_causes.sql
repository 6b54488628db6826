-- Who or what moved a run (`runner`, `recovery`, `github`, `person:<name>`), on its event.
ALTER TABLE run_events ADD COLUMN cause TEXT;
