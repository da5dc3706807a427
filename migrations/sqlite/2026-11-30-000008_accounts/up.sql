-- Accounts own the money: the prepaid balance (cached SUM of the account's ledger), the free
-- requests and the invoices. Keys belong to an account and keep their own budgets, RPM limit,
-- notification settings and disabled flag. A key's role is 'manage' (may mint, change, rotate
-- and disable the account's keys and read every key's usage) or 'use' (spends, reads its own).
CREATE TABLE accounts (
    id TEXT PRIMARY KEY NOT NULL,
    created_at TIMESTAMP NOT NULL,
    balance_micros BIGINT NOT NULL DEFAULT 0,
    free_requests_remaining BIGINT NOT NULL
);

-- Every existing key becomes the manage key of an account of its own, with its balance and
-- free requests (ids: key_XYZ -> acct_XYZ).
INSERT INTO accounts (id, created_at, balance_micros, free_requests_remaining)
SELECT CASE WHEN substr(id, 1, 4) = 'key_' THEN 'acct_' || substr(id, 5) ELSE 'acct_' || id END,
       created_at, balance_micros, free_requests_remaining
FROM api_keys;

ALTER TABLE api_keys ADD COLUMN account_id TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN role TEXT NOT NULL DEFAULT 'manage';
UPDATE api_keys SET account_id =
    CASE WHEN substr(id, 1, 4) = 'key_' THEN 'acct_' || substr(id, 5) ELSE 'acct_' || id END;
CREATE INDEX api_keys_account ON api_keys (account_id);
ALTER TABLE api_keys DROP COLUMN balance_micros;
ALTER TABLE api_keys DROP COLUMN free_requests_remaining;

-- The ledger, usage and invoices say which account as well as which key (the key that spent,
-- or asked for the invoice, or was named in an admin credit).
ALTER TABLE ledger ADD COLUMN account_id TEXT NOT NULL DEFAULT '';
UPDATE ledger SET account_id = (SELECT k.account_id FROM api_keys k WHERE k.id = ledger.key_id);
CREATE INDEX ledger_account ON ledger (account_id, created_at);

ALTER TABLE usage ADD COLUMN account_id TEXT NOT NULL DEFAULT '';
UPDATE usage SET account_id = (SELECT k.account_id FROM api_keys k WHERE k.id = usage.key_id);
CREATE INDEX usage_account_created ON usage (account_id, created_at);

ALTER TABLE invoices ADD COLUMN account_id TEXT NOT NULL DEFAULT '';
UPDATE invoices SET account_id = (SELECT k.account_id FROM api_keys k WHERE k.id = invoices.key_id);
CREATE INDEX invoices_account ON invoices (account_id, created_at);
