-- Each replacement of a SCIM group moves it one version up, so a PATCH (read, change,
-- write) replaces only the version it read and never loses a change made in between.
ALTER TABLE scim_groups ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
