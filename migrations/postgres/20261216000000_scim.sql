-- Provisioning (SCIM): what it says about users beside the sign-in's claims, and its
-- groups with their members. A user name is unique per tenant without regard to case, so
-- is a group's display name; a user made by signing in has no user name.
ALTER TABLE users ADD COLUMN source TEXT NOT NULL DEFAULT 'sso';
ALTER TABLE users ADD COLUMN user_name TEXT;
ALTER TABLE users ADD COLUMN external_id TEXT;
ALTER TABLE users ADD COLUMN given_name TEXT;
ALTER TABLE users ADD COLUMN family_name TEXT;
ALTER TABLE users ADD COLUMN formatted_name TEXT;
CREATE UNIQUE INDEX users_user_name ON users (tenant_id, lower(user_name));

CREATE TABLE scim_groups (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    display_name TEXT NOT NULL,
    external_id  TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX scim_groups_name ON scim_groups (tenant_id, lower(display_name));

CREATE TABLE scim_group_members (
    group_id TEXT NOT NULL REFERENCES scim_groups (id) ON DELETE CASCADE,
    user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX scim_group_members_by_user ON scim_group_members (user_id);
