-- CFactory's PostgreSQL schema. Every row carries its tenant; keys and identifiers use
-- the "C" collation so ordering matches the in-memory store's byte order.

-- One row per WorkItem: its state as a JSON document (stored as sent, so it reads back
-- exactly) plus the columns that lists filter and sort on.
CREATE TABLE workitems (
    tenant_id    TEXT COLLATE "C" NOT NULL,
    key          TEXT COLLATE "C" NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    -- The furthest started stage ('plan', 'code', 'test') and its status class.
    active_stage TEXT COLLATE "C",
    active_class TEXT COLLATE "C",
    -- Which stages are present (the service filter) ...
    has_plan     BOOLEAN NOT NULL,
    has_code     BOOLEAN NOT NULL,
    has_test     BOOLEAN NOT NULL,
    -- ... and which are present and not terminal (a complete task list may clear them).
    open_plan    BOOLEAN NOT NULL,
    open_code    BOOLEAN NOT NULL,
    open_test    BOOLEAN NOT NULL,
    -- The earliest time a running or stuck stage last spoke (stalled when too old).
    stall_at     TIMESTAMPTZ,
    -- WorkItem::search_text, already lower-cased.
    search_text  TEXT COLLATE "C" NOT NULL,
    doc          JSON NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX workitems_newest ON workitems (tenant_id, updated_at DESC, key DESC);

-- Everything an item can be found by: 'key:<k>' for its key and aliases, '<service>:<task>'.
CREATE TABLE identifiers (
    tenant_id TEXT COLLATE "C" NOT NULL,
    ident     TEXT COLLATE "C" NOT NULL,
    item_key  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, ident)
);
CREATE INDEX identifiers_item ON identifiers (tenant_id, item_key);

-- The timeline: appended, never rewritten (merges move rows to the surviving key).
CREATE TABLE events (
    seq         BIGSERIAL PRIMARY KEY,
    tenant_id   TEXT COLLATE "C" NOT NULL,
    event_id    TEXT COLLATE "C",
    item_key    TEXT COLLATE "C" NOT NULL,
    service     TEXT NOT NULL,
    task_id     TEXT NOT NULL,
    status      TEXT NOT NULL,
    time        TIMESTAMPTZ NOT NULL,
    -- Nanoseconds below the microsecond TIMESTAMPTZ keeps, so `time` reads back exactly.
    time_nanos  INTEGER NOT NULL DEFAULT 0,
    received_at TIMESTAMPTZ NOT NULL,
    -- The JSON text exactly as received, never re-serialised.
    raw         TEXT NOT NULL,
    -- NULL ids are distinct, so events without an id may repeat.
    UNIQUE (tenant_id, event_id)
);
CREATE INDEX events_timeline ON events (tenant_id, item_key, time, seq);

-- Usage per (item, service, task), rebuilt from the item whenever it changes.
CREATE TABLE usage (
    tenant_id     TEXT COLLATE "C" NOT NULL,
    item_key      TEXT COLLATE "C" NOT NULL,
    service       TEXT COLLATE "C" NOT NULL,
    task_id       TEXT COLLATE "C" NOT NULL,
    model         TEXT COLLATE "C",
    project       TEXT COLLATE "C",
    input_tokens  BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    total_tokens  BIGINT NOT NULL,
    cost_usd      DOUBLE PRECISION NOT NULL
);
CREATE INDEX usage_item ON usage (tenant_id, item_key);

-- API keys, stored by the SHA-256 of their secret, never the secret.
CREATE TABLE api_keys (
    id            TEXT COLLATE "C" PRIMARY KEY,
    name          TEXT,
    tenant_id     TEXT NOT NULL,
    scopes        TEXT[] NOT NULL,
    secret_sha256 TEXT NOT NULL UNIQUE,
    created_at    TIMESTAMPTZ NOT NULL,
    revoked_at    TIMESTAMPTZ
);

-- Text search may use trigrams where the server has pg_trgm; without it, lists fall back
-- to a scan of the tenant's rows, and the migration still succeeds.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE INDEX workitems_search ON workitems USING gin (search_text gin_trgm_ops);
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'pg_trgm unavailable (%); text search scans', SQLERRM;
END
$$;
