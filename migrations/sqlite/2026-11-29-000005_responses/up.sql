-- Responses kept for `store: true` and `previous_response_id`, per key (Pura never asks an
-- upstream to store them). `items` is the conversation so far (input and output items, JSON);
-- `response` the response object as the client received it.
CREATE TABLE responses (
    id TEXT PRIMARY KEY NOT NULL,
    key_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    items TEXT NOT NULL,
    response TEXT NOT NULL
);
CREATE INDEX responses_key_created ON responses (key_id, created_at);
