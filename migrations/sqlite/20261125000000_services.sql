-- Upstream base URLs set from the cockpit, so a restart keeps them.
CREATE TABLE services (
    name       TEXT PRIMARY KEY,
    url        TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
