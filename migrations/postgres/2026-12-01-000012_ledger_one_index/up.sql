-- The ledger is read by account (ledger_account; a key's entries through its account): the
-- index by key cost every debit another B-tree insert and served no reader.
DROP INDEX ledger_key;
