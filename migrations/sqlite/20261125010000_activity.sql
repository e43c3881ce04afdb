-- The activity feed reads a tenant's events newest first.
CREATE INDEX events_activity ON events (tenant_id, seq);
