-- An item's row is rewritten on every change, and a rewrite that moves `updated_at` adds
-- an entry to every index of the table, the trigram index included. The search text
-- itself changes seldom (a new alias, title, branch or task), so it moves to a table of
-- its own that is written only when it changes.
CREATE TABLE workitem_search (
    tenant_id   TEXT COLLATE "C" NOT NULL,
    key         TEXT COLLATE "C" NOT NULL,
    -- WorkItem::search_text, already lower-cased.
    search_text TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
INSERT INTO workitem_search (tenant_id, key, search_text)
    SELECT tenant_id, key, search_text FROM workitems;
-- Drops the old trigram index with the column.
ALTER TABLE workitems DROP COLUMN search_text;
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE INDEX workitem_search_trgm ON workitem_search USING gin (search_text gin_trgm_ops);
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'pg_trgm unavailable (%); text search scans', SQLERRM;
END
$$;

-- Every write to a tenant's items bumps the tenant's generation, in the same transaction.
-- A writer that remembers the items it loaded and wrote keeps trusting them only while
-- the generation it reads on taking the tenant's lock is the one it last wrote.
CREATE TABLE tenant_writes (
    tenant_id  TEXT COLLATE "C" PRIMARY KEY,
    generation BIGINT NOT NULL
);
