-- Idempotency-Key of order creation and checkout: one row per (user, key) holds the request's
-- fingerprint and, once answered, the answer (status and JSON body) every retry gets again.
-- state: running (a request is working on it), abandoned (it failed without an answer: the next
-- retry takes over), done. order_id is written with the order, so a retry after a crash finds it.
CREATE TABLE idempotency_keys (
    id {{pk}},
    user_id BIGINT NOT NULL,
    idem_key VARCHAR(255) NOT NULL,
    fingerprint CHAR(64) NOT NULL,
    state VARCHAR(10) NOT NULL,
    order_id BIGINT NULL,
    status_code INTEGER NULL,
    response {{text}} NULL,
    created_at VARCHAR(32) NOT NULL,
    updated_at VARCHAR(32) NOT NULL
);
CREATE UNIQUE INDEX idempotency_keys_user_key ON idempotency_keys (user_id, idem_key);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
-- Counting a user's open orders (the pending bound).
CREATE INDEX orders_user_status ON orders (user_id, status);
