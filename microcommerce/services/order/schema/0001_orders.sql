-- Orders. Besides the public statuses, "reserving" (stock being reserved) and "failed" (the
-- reservation was refused) are internal: such orders are never shown to anyone.
CREATE TABLE orders (
    id {{pk}},
    user_id BIGINT NOT NULL,
    status VARCHAR(20) NOT NULL,
    total_cents BIGINT NOT NULL,
    currency VARCHAR(10) NOT NULL,
    payment_id BIGINT NULL,
    cancel_reason VARCHAR(200) NULL,
    created_at VARCHAR(32) NOT NULL,
    updated_at VARCHAR(32) NOT NULL
);
CREATE INDEX orders_user ON orders (user_id, id);
CREATE INDEX orders_status ON orders (status, created_at);
-- Lines keep the cart's name and price at ordering time (a later price change does not touch them).
CREATE TABLE order_items (
    id {{pk}},
    order_id BIGINT NOT NULL,
    product_id BIGINT NOT NULL,
    product_name VARCHAR(255) NOT NULL,
    quantity INTEGER NOT NULL,
    unit_price_cents BIGINT NOT NULL,
    line_total_cents BIGINT NOT NULL
);
CREATE INDEX order_items_order ON order_items (order_id);
-- Projection of the user service's users (USER_CREATED / UPDATED / DELETED).
CREATE TABLE users (
    id BIGINT PRIMARY KEY,
    name VARCHAR(200) NOT NULL,
    email VARCHAR(255) NOT NULL,
    role VARCHAR(20) NOT NULL,
    account_status VARCHAR(20) NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    updated_at VARCHAR(32) NOT NULL
);
