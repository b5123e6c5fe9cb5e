-- One row per domain event or HTTP activity report; UNIQUE(event_id) backs up the inbox.
CREATE TABLE audit_logs (
    id {{pk}},
    log_type VARCHAR(10) NOT NULL,
    service_name VARCHAR(100) NOT NULL,
    event_type VARCHAR(100) NOT NULL,
    event_id VARCHAR(64) NOT NULL,
    actor_user_id BIGINT NULL,
    actor_role VARCHAR(20) NULL,
    severity VARCHAR(10) NOT NULL,
    http_method VARCHAR(10) NULL,
    http_status INTEGER NULL,
    path VARCHAR(1000) NULL,
    summary VARCHAR(500) NOT NULL,
    payload {{json}} NOT NULL,
    occurred_at VARCHAR(32) NOT NULL,
    recorded_at VARCHAR(32) NOT NULL
);
CREATE UNIQUE INDEX audit_logs_event_id ON audit_logs (event_id);
CREATE INDEX audit_logs_occurred ON audit_logs (occurred_at, id);
CREATE INDEX audit_logs_actor ON audit_logs (actor_user_id, occurred_at);
CREATE INDEX audit_logs_event_type ON audit_logs (event_type, occurred_at);
CREATE INDEX audit_logs_service ON audit_logs (service_name, occurred_at);
