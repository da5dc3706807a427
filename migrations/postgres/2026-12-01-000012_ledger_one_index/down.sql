CREATE INDEX ledger_key ON ledger (key_id, created_at);
