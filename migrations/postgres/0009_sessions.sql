-- Web UI sessions: signed in with an API token; the cookie holds a random id whose hash is kept
-- here, with the session's CSRF token.
CREATE TABLE sessions (
    id_sha256      TEXT    PRIMARY KEY,
    token_name     TEXT    NOT NULL,
    role           TEXT    NOT NULL,
    csrf           TEXT    NOT NULL,
    expires_at_ms  BIGINT  NOT NULL
);
