DROP TABLE retired_keys;
DROP TABLE notifications;
DROP TABLE ledger;
ALTER TABLE api_keys DROP COLUMN balance_micros;
