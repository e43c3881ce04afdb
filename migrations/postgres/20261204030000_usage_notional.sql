-- Dollars reported by subscription or local workers: kept beside spend, never part of it.
ALTER TABLE usage ADD COLUMN notional_cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0;
