-- Proposed actions, waiting for a person (status `prepared`) or done with. The document is
-- the whole action; status and times are columns for lists and the compare-and-set.
CREATE TABLE actions (
    tenant_id  TEXT NOT NULL,
    id         TEXT NOT NULL,
    status     TEXT NOT NULL,
    -- Microseconds since the epoch.
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    doc        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX actions_newest ON actions (tenant_id, created_at DESC, id DESC);

-- Copilot conversations, one JSON document each (messages and the tool trace).
CREATE TABLE conversations (
    tenant_id  TEXT NOT NULL,
    id         TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    doc        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
