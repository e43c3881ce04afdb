-- The audit log: one HMAC chain per tenant. Rows are only ever appended; the head (the
-- last hash and the count, sealed) lives apart so deleting the newest rows shows.
CREATE TABLE audit_log (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id      TEXT NOT NULL,
    seq            INTEGER NOT NULL,
    -- Microseconds since the epoch.
    at             INTEGER NOT NULL,
    actor          TEXT NOT NULL,
    kind           TEXT NOT NULL,
    correlation_key TEXT,
    target         TEXT,
    method         TEXT,
    endpoint       TEXT,
    status_code    INTEGER,
    ok             INTEGER NOT NULL,
    action_id      TEXT,
    payload_sha256 TEXT,
    prev_hash      TEXT NOT NULL,
    entry_hash     TEXT NOT NULL
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id);

CREATE TABLE audit_heads (
    tenant_id TEXT PRIMARY KEY,
    last_hash TEXT NOT NULL,
    count     INTEGER NOT NULL,
    head_mac  TEXT NOT NULL
);
