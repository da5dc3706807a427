DROP TABLE key_mints;
DROP TABLE free_spend;
