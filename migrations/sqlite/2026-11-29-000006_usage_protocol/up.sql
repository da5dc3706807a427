-- Which client protocol a request came in (chat, responses, messages), and the cached-prompt
-- and reasoning tokens the upstream reported (the cost already prices cached tokens).
ALTER TABLE usage ADD COLUMN protocol TEXT NOT NULL DEFAULT 'chat';
ALTER TABLE usage ADD COLUMN cached_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage ADD COLUMN reasoning_tokens BIGINT NOT NULL DEFAULT 0;
