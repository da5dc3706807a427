CREATE INDEX usage_account_created ON usage (account_id, created_at);
