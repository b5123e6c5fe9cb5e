-- Projection of the user service's users: who to greet and where to mail. A deleted user
-- stays as a tombstone so a late USER_CREATED/UPDATED cannot bring the row back.
CREATE TABLE users (
    id BIGINT NOT NULL PRIMARY KEY,
    name VARCHAR(200) NOT NULL,
    email VARCHAR(255) NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    updated_at VARCHAR(32) NOT NULL
);
CREATE TABLE notifications (
    id {{pk}},
    user_id BIGINT NOT NULL,
    channel VARCHAR(10) NOT NULL,
    type VARCHAR(64) NOT NULL,
    title VARCHAR(200) NOT NULL,
    body {{text}} NOT NULL,
    status VARCHAR(20) NOT NULL,
    source_event_id VARCHAR(64) NOT NULL,
    read_at VARCHAR(32) NULL,
    created_at VARCHAR(32) NOT NULL
);
-- Exactly one record per (source event, channel), even if the inbox were bypassed.
CREATE UNIQUE INDEX notifications_source_channel ON notifications (source_event_id, channel);
CREATE INDEX notifications_user ON notifications (user_id, id);
-- Dev profile only: every message the mock senders "sent", readable at /notifications/dev/outbox.
CREATE TABLE dev_outbox (
    id {{pk}},
    notification_id BIGINT NOT NULL,
    channel VARCHAR(10) NOT NULL,
    recipient VARCHAR(255) NOT NULL,
    subject VARCHAR(200) NOT NULL,
    body {{text}} NOT NULL,
    created_at VARCHAR(32) NOT NULL
);
CREATE INDEX dev_outbox_recipient ON dev_outbox (recipient, id);
