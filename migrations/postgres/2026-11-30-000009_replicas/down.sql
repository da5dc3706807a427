DROP TABLE session_pins;
DROP TABLE rpm_buckets;
DROP TABLE key_spend;
DROP TABLE holds;
DROP TABLE replicas;
