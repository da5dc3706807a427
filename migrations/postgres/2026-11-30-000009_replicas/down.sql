DROP TABLE session_pins;
DROP TABLE rpm_log;
DROP TABLE key_spend;
DROP TABLE holds;
DROP TABLE replicas;
