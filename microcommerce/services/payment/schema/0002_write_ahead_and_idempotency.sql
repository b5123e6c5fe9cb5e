-- A charge is written ahead: the payment row exists (pending) before the provider is called,
-- carrying the idempotency key the provider gets, so a crash in between can be reconciled.
ALTER TABLE payments ADD COLUMN idempotency_key VARCHAR(64) NULL;
CREATE UNIQUE INDEX payments_idempotency_key ON payments (idempotency_key);
CREATE INDEX payments_status ON payments (status, id);
-- Idempotency-Key of POST /payments/me/orders/:orderId/charge, per user. The key is stored as
-- its SHA-256 (fixed width, and case-sensitive whatever the column collation); `fingerprint`
-- is the SHA-256 of the request, so the same key with another request is refused.
CREATE TABLE charge_requests (
    user_id BIGINT NOT NULL,
    key_hash VARCHAR(64) NOT NULL,
    fingerprint VARCHAR(64) NOT NULL,
    order_id BIGINT NOT NULL,
    payment_id BIGINT NULL,
    status_code INTEGER NULL,
    response {{json}} NULL,
    created_at VARCHAR(32) NOT NULL,
    PRIMARY KEY (user_id, key_hash)
);
