-- Dead letters: events a consumer failed on EVENT_MAX_ATTEMPTS times, kept with the error so an
-- operator can see why and redrive them once the cause is fixed (one row per consumer and event).
CREATE TABLE dead_letters (
    id {{pk}},
    consumer VARCHAR(100) NOT NULL,
    topic VARCHAR(100) NOT NULL,
    event_key VARCHAR(100) NOT NULL,
    event_id VARCHAR(64) NOT NULL,
    event_type VARCHAR(100) NOT NULL,
    payload {{json}} NOT NULL,
    error {{text}} NOT NULL,
    attempts INTEGER NOT NULL,
    parked_at VARCHAR(32) NOT NULL,
    redrive_requested_at VARCHAR(32) NULL,
    redriven_at VARCHAR(32) NULL
);
CREATE UNIQUE INDEX dead_letters_event ON dead_letters (consumer, event_id);
