-- Only an account with a single key can go back to a key holding its own money.
DROP INDEX invoices_account;
ALTER TABLE invoices DROP COLUMN account_id;
DROP INDEX usage_account_created;
ALTER TABLE usage DROP COLUMN account_id;
DROP INDEX ledger_account;
ALTER TABLE ledger DROP COLUMN account_id;
ALTER TABLE api_keys ADD COLUMN balance_micros BIGINT NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN free_requests_remaining BIGINT NOT NULL DEFAULT 0;
UPDATE api_keys SET
    balance_micros = (SELECT a.balance_micros FROM accounts a WHERE a.id = api_keys.account_id),
    free_requests_remaining = (SELECT a.free_requests_remaining FROM accounts a WHERE a.id = api_keys.account_id)
WHERE role = 'manage';
DROP INDEX api_keys_account;
ALTER TABLE api_keys DROP COLUMN role;
ALTER TABLE api_keys DROP COLUMN account_id;
DROP TABLE accounts;
