-- Transactional outbox: an event row is written in the same transaction as the change it announces.
CREATE TABLE outbox (
    id {{pk}},
    topic VARCHAR(100) NOT NULL,
    event_key VARCHAR(100) NOT NULL,
    event_type VARCHAR(100) NOT NULL,
    payload {{json}} NOT NULL,
    created_at VARCHAR(32) NOT NULL,
    published_at VARCHAR(32) NULL
);
CREATE INDEX outbox_pending ON outbox (published_at, id);
-- Inbox: one row per (consumer, event) so an event delivered twice is applied once.
CREATE TABLE inbox (
    consumer VARCHAR(100) NOT NULL,
    event_id VARCHAR(64) NOT NULL,
    received_at VARCHAR(32) NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
