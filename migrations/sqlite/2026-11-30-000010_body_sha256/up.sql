-- The hex SHA-256 of the request body as received (X-Pura-Body-Sha256), so a client can
-- reconcile a request with its own records and the upstream's. Older rows have none.
ALTER TABLE usage ADD COLUMN body_sha256 TEXT;
