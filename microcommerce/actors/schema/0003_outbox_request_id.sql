-- The request that caused an event, so it can be followed through every consumer's logs.
ALTER TABLE outbox ADD COLUMN request_id VARCHAR(64) NULL;
