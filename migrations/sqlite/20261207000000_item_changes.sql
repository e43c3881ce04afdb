-- Items a poll's hydration changed, for the other processes on the same file: their
-- watchers learn of ingest from the events appended, and of hydration, which appends no
-- event, from here. Each writer prunes rows older than an hour.
CREATE TABLE item_changes (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    item_key TEXT NOT NULL,
    at       INTEGER NOT NULL
);
CREATE INDEX item_changes_at ON item_changes (at);
