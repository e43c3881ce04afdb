-- Browser sessions, kept in the database so a restart honours them. Only hashes are
-- stored: the SHA-256 of the cookie's token and of the API key it signed in with.
CREATE TABLE browser_sessions (
    token_sha256 TEXT PRIMARY KEY,
    key_sha256   TEXT NOT NULL,
    expires_at   INTEGER NOT NULL  -- microseconds since the epoch
);

-- Ended sessions are dropped by their end, oldest first.
CREATE INDEX browser_sessions_expiry ON browser_sessions (expires_at);
