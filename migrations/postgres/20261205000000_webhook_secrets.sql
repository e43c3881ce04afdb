-- Webhook signing secrets (Standard Webhooks). A signature can only be checked with the
-- secret itself, so it is kept whole (hex), unlike API keys, which are kept as hashes.
CREATE TABLE webhook_secrets (
    id         TEXT COLLATE "C" PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    name       TEXT,
    secret     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);

CREATE INDEX webhook_secrets_tenant ON webhook_secrets (tenant_id, created_at);
