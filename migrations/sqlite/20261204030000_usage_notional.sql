-- Dollars reported by subscription or local workers: kept beside spend, never part of it.
ALTER TABLE usage ADD COLUMN notional_cost_usd REAL NOT NULL DEFAULT 0;
