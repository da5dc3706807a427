-- Several replicas on one PostgreSQL: the database arbitrates every reservation (SQLite is one
-- process, whose BudgetActors are exact on their own, and never uses these tables).
--
-- The replicas alive: each refreshes its row every few seconds; holds of a replica not seen for
-- a while are no longer counted (it died: kill -9 leaves its holds behind) and are swept.
CREATE TABLE replicas (
    id TEXT PRIMARY KEY NOT NULL,
    seen_at TIMESTAMP NOT NULL
);

-- One row per reservation in flight: what it may still cost (paid) or the free request it
-- uses. Taken under the account row's lock; the settlement deletes it in the same commit as
-- the debit, a request that served nothing deletes it at once.
CREATE TABLE holds (
    id TEXT PRIMARY KEY NOT NULL,
    replica_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    estimate_micros BIGINT NOT NULL,
    free BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX holds_account ON holds (account_id);
CREATE INDEX holds_replica ON holds (replica_id);

-- Each key's spend per budget window ('day', 'month'), kept by the settlement writer, so that
-- checking a budget reads one row instead of summing usage rows. Created from the usage rows
-- when a window is first checked.
CREATE TABLE key_spend (
    key_id TEXT NOT NULL,
    budget_window TEXT NOT NULL,
    window_start TIMESTAMP NOT NULL,
    spent_micros BIGINT NOT NULL,
    PRIMARY KEY (key_id, budget_window, window_start)
);

-- Requests let through per key and second, for an RPM limit that holds across replicas: the
-- last 60 one-second buckets are summed (a sliding minute to within a second); older buckets
-- are swept.
CREATE TABLE rpm_buckets (
    key_id TEXT NOT NULL,
    second TIMESTAMP NOT NULL,
    hits BIGINT NOT NULL,
    PRIMARY KEY (key_id, second)
);
CREATE INDEX rpm_buckets_second ON rpm_buckets (second);

-- Session pins shared by the replicas: a conversation never routes below the tier it used.
CREATE TABLE session_pins (
    key_id TEXT NOT NULL,
    session TEXT NOT NULL,
    tier INTEGER NOT NULL,
    seen_at TIMESTAMP NOT NULL,
    PRIMARY KEY (key_id, session)
);
CREATE INDEX session_pins_seen ON session_pins (seen_at);
