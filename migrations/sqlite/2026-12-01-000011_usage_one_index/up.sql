-- An account's usage rows are read through its keys (a key never changes account), on
-- usage_key_created; this second index cost every inserted row another B-tree insert.
DROP INDEX usage_account_created;
