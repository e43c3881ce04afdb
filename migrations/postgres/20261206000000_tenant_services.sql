-- Each tenant has its own registry of upstream services: a base URL and the bearer token
-- set for that URL's origin. URLs stored before registries were per tenant belonged to the
-- deployment; they move to the tenant `default`.
CREATE TABLE service_settings (
    tenant_id  TEXT COLLATE "C" NOT NULL,
    name       TEXT COLLATE "C" NOT NULL,
    url        TEXT NOT NULL,
    token      TEXT,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
INSERT INTO service_settings (tenant_id, name, url, token, updated_at)
    SELECT 'default', name, url, NULL, updated_at FROM services;
DROP TABLE services;
