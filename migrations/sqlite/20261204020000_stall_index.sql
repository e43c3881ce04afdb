-- The list's stalled count reads the few items that can stall, not every row.
CREATE INDEX workitems_stall ON workitems (tenant_id, stall_at) WHERE stall_at IS NOT NULL;
