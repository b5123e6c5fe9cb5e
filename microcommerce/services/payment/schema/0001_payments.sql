CREATE TABLE payments (
    id {{pk}},
    order_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    provider VARCHAR(20) NOT NULL,
    provider_payment_id VARCHAR(64) NULL,
    provider_refund_id VARCHAR(64) NULL,
    payment_method VARCHAR(50) NULL,
    status VARCHAR(20) NOT NULL,
    amount_cents BIGINT NOT NULL,
    currency VARCHAR(3) NOT NULL,
    failure_reason VARCHAR(100) NULL,
    refund_reason VARCHAR(100) NULL,
    metadata {{json}} NULL,
    -- Set (to order_id) only when a payment succeeds; the unique index makes a second
    -- succeeded payment of one order impossible, whatever process tries to write it.
    success_order_id BIGINT NULL,
    created_at VARCHAR(32) NOT NULL,
    updated_at VARCHAR(32) NOT NULL,
    refunded_at VARCHAR(32) NULL
);
CREATE UNIQUE INDEX payments_success_order ON payments (success_order_id);
CREATE INDEX payments_order ON payments (order_id);
CREATE INDEX payments_user ON payments (user_id, id);
-- What this service knows about an order. Charges and cancellations both lock the order's row
-- first, so a charge and an ORDER_CANCELLED never miss each other (no write skew on MariaDB).
CREATE TABLE order_guards (
    order_id BIGINT NOT NULL PRIMARY KEY,
    cancelled_at VARCHAR(32) NULL,
    touches INTEGER NOT NULL DEFAULT 0
);
