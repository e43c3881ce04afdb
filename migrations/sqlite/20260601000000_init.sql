-- CFactory's SQLite schema, the embedded twin of migrations/postgres. Every row carries
-- its tenant; text compares with SQLite's BINARY collation, which is byte order, so
-- ordering matches the in-memory store. Timestamps are INTEGER microseconds since the
-- Unix epoch (UTC).

-- One row per WorkItem: its state as a JSON document plus the columns lists filter on.
CREATE TABLE workitems (
    tenant_id    TEXT NOT NULL,
    key          TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    active_stage TEXT,
    active_class TEXT,
    has_plan     INTEGER NOT NULL,
    has_code     INTEGER NOT NULL,
    has_test     INTEGER NOT NULL,
    -- Stages that are present and not terminal (hydration clears those whose task vanished).
    open_plan    INTEGER NOT NULL,
    open_code    INTEGER NOT NULL,
    open_test    INTEGER NOT NULL,
    stall_at     INTEGER,
    search_text  TEXT NOT NULL,
    doc          TEXT NOT NULL,
    PRIMARY KEY (tenant_id, key)
) WITHOUT ROWID;
CREATE INDEX workitems_newest ON workitems (tenant_id, updated_at DESC, key DESC);

-- Everything an item can be found by: 'key:<k>' for its key and aliases, '<service>:<task>'.
CREATE TABLE identifiers (
    tenant_id TEXT NOT NULL,
    ident     TEXT NOT NULL,
    item_key  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, ident)
) WITHOUT ROWID;
CREATE INDEX identifiers_item ON identifiers (tenant_id, item_key);

-- The timeline: appended, never rewritten (merges move rows to the surviving key).
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   TEXT NOT NULL,
    event_id    TEXT,
    item_key    TEXT NOT NULL,
    service     TEXT NOT NULL,
    task_id     TEXT NOT NULL,
    status      TEXT NOT NULL,
    time        INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    -- The JSON text exactly as received, never re-serialised.
    raw         TEXT NOT NULL,
    -- NULL ids are distinct, so events without an id may repeat.
    UNIQUE (tenant_id, event_id)
);
CREATE INDEX events_timeline ON events (tenant_id, item_key, time, seq);

-- Usage per (item, service, task), rebuilt from the item whenever it changes.
CREATE TABLE usage (
    tenant_id     TEXT NOT NULL,
    item_key      TEXT NOT NULL,
    service       TEXT NOT NULL,
    task_id       TEXT NOT NULL,
    model         TEXT,
    project       TEXT,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    total_tokens  INTEGER NOT NULL,
    cost_usd      REAL NOT NULL,
    PRIMARY KEY (tenant_id, item_key, service, task_id)
) WITHOUT ROWID;

-- API keys, stored by the SHA-256 of their secret, never the secret.
CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    name          TEXT,
    tenant_id     TEXT NOT NULL,
    -- Scope names joined by ','.
    scopes        TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER
);
