-- Lightning invoices that fund a key's balance. `status` moves pending -> paid (or expired,
-- and expired -> paid for a late payment) by a conditional update, so a payment is credited once.
CREATE TABLE invoices (
    id TEXT PRIMARY KEY NOT NULL,
    key_id TEXT NOT NULL REFERENCES api_keys(id),
    backend TEXT NOT NULL,
    payment_hash TEXT NOT NULL UNIQUE,
    bolt11 TEXT NOT NULL,
    amount_sats BIGINT NOT NULL,
    status TEXT NOT NULL,
    checkout_url TEXT,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    paid_at TIMESTAMP
);
CREATE INDEX invoices_key ON invoices (key_id, created_at);
CREATE INDEX invoices_status ON invoices (status, expires_at);
