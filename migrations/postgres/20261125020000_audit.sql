-- The audit log: one HMAC chain per tenant. Rows are only ever appended; the head (the
-- last hash and the count, sealed) lives apart so deleting the newest rows shows.
CREATE TABLE audit_log (
    id             BIGSERIAL PRIMARY KEY,
    tenant_id      TEXT COLLATE "C" NOT NULL,
    seq            BIGINT NOT NULL,
    at             TIMESTAMPTZ NOT NULL,
    actor          TEXT NOT NULL,
    kind           TEXT NOT NULL,
    correlation_key TEXT,
    target         TEXT,
    method         TEXT,
    endpoint       TEXT,
    status_code    INTEGER,
    ok             BOOLEAN NOT NULL,
    action_id      TEXT,
    payload_sha256 TEXT,
    prev_hash      TEXT NOT NULL,
    entry_hash     TEXT NOT NULL
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id);

CREATE TABLE audit_heads (
    tenant_id TEXT COLLATE "C" PRIMARY KEY,
    last_hash TEXT NOT NULL,
    count     BIGINT NOT NULL,
    head_mac  TEXT NOT NULL
);
