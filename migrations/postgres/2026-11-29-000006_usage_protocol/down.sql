ALTER TABLE usage DROP COLUMN reasoning_tokens;
ALTER TABLE usage DROP COLUMN cached_tokens;
ALTER TABLE usage DROP COLUMN protocol;
