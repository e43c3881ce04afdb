-- Webhook signing secrets (Standard Webhooks). A signature can only be checked with the
-- secret itself, so it is kept whole (hex), unlike API keys, which are kept as hashes.
CREATE TABLE webhook_secrets (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    name       TEXT,
    secret     TEXT NOT NULL,
    created_at INTEGER NOT NULL,  -- microseconds since the epoch
    revoked_at INTEGER
);

CREATE INDEX webhook_secrets_tenant ON webhook_secrets (tenant_id, created_at);
