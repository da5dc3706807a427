CREATE TABLE api_keys (
    id TEXT PRIMARY KEY NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    disabled BOOLEAN NOT NULL DEFAULT 0,
    free_requests_remaining BIGINT NOT NULL,
    daily_budget_micros BIGINT,
    monthly_budget_micros BIGINT,
    rpm_limit INTEGER,
    notify_email TEXT,
    webhook_url TEXT
);

CREATE TABLE usage (
    id TEXT PRIMARY KEY NOT NULL,
    key_id TEXT NOT NULL REFERENCES api_keys(id),
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    tier TEXT NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    cost_micros BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,
    ttft_ms BIGINT,
    status TEXT NOT NULL,
    stream BOOLEAN NOT NULL,
    upstream_request_id TEXT,
    client_request_id TEXT,
    created_at TIMESTAMP NOT NULL
);

CREATE INDEX usage_key_created ON usage (key_id, created_at);
