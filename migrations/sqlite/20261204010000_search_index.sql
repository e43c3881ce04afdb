-- Each item's key (the primary key rides in every entry) and search text, so a list's
-- text filter finds its matches without reading the items' documents. An entry changes
-- only when its item's text does, which is rare next to the other columns.
CREATE INDEX workitems_search ON workitems (tenant_id, search_text);
