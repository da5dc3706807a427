ALTER TABLE usage DROP COLUMN premium_cost_micros;
