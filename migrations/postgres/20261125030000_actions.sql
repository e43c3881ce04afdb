-- Proposed actions, waiting for a person (status `prepared`) or done with. The document is
-- the whole action; status and times are columns for lists and the compare-and-set.
CREATE TABLE actions (
    tenant_id  TEXT COLLATE "C" NOT NULL,
    id         TEXT COLLATE "C" NOT NULL,
    status     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    doc        JSONB NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX actions_newest ON actions (tenant_id, created_at DESC, id DESC);

-- Copilot conversations, one JSON document each (messages and the tool trace).
CREATE TABLE conversations (
    tenant_id  TEXT COLLATE "C" NOT NULL,
    id         TEXT COLLATE "C" NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    doc        JSONB NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
