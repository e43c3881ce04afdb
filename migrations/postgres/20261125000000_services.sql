-- Upstream base URLs set from the cockpit, so a restart keeps them.
CREATE TABLE services (
    name       TEXT COLLATE "C" PRIMARY KEY,
    url        TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
