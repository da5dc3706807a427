-- The ledger is the source of truth for money (integer micro-dollars). api_keys.balance_micros
-- caches SUM(ledger.amount_micros) per key and is updated in the same transaction as every entry.
ALTER TABLE api_keys ADD COLUMN balance_micros BIGINT NOT NULL DEFAULT 0;

CREATE TABLE ledger (
    id TEXT PRIMARY KEY NOT NULL,
    key_id TEXT NOT NULL REFERENCES api_keys(id),
    kind TEXT NOT NULL,
    -- What the entry is for (a request id, an invoice id, an admin credit id): unique per kind,
    -- so the same request can never be debited twice nor an invoice credited twice.
    reference TEXT NOT NULL,
    amount_micros BIGINT NOT NULL,
    memo TEXT,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (kind, reference)
);
CREATE INDEX ledger_key ON ledger (key_id, created_at);

-- One row per budget notification sent: (key, window, window start, threshold) at most once.
CREATE TABLE notifications (
    key_id TEXT NOT NULL REFERENCES api_keys(id),
    budget_window TEXT NOT NULL,
    window_start TIMESTAMP NOT NULL,
    threshold INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (key_id, budget_window, window_start, threshold)
);

-- Rotated-away key hashes, kept for history.
CREATE TABLE retired_keys (
    key_hash TEXT PRIMARY KEY NOT NULL,
    key_id TEXT NOT NULL REFERENCES api_keys(id),
    retired_at TIMESTAMP NOT NULL
);
