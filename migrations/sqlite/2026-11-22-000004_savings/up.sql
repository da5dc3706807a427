-- What the request would have cost at the premium tier's default model: savings = this - cost_micros.
ALTER TABLE usage ADD COLUMN premium_cost_micros BIGINT NOT NULL DEFAULT 0;
