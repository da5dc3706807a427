-- Deployment-wide free spend per UTC day (catalogue cost of free-tier requests): a request
-- served free first adds its reserved estimate with a conditional update that refuses to pass
-- free_tier.daily_budget_usd; its settlement replaces the estimate with the actual cost.
CREATE TABLE free_spend (
    day TIMESTAMP NOT NULL PRIMARY KEY,
    spent_micros BIGINT NOT NULL DEFAULT 0
);
-- Keys minted without the admin token, counted per source address and clock hour, so that
-- server.key_mint_per_ip_per_hour holds across restarts and replicas.
CREATE TABLE key_mints (
    ip TEXT NOT NULL,
    window_start TIMESTAMP NOT NULL,
    mints BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (ip, window_start)
);
