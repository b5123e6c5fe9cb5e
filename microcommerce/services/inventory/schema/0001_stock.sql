-- Stock per product. available = total_quantity - reserved_quantity (never stored: it cannot drift).
-- Invariant: stock in (initial + adjustments) = total_quantity + sold_quantity.
CREATE TABLE stock (
    product_id BIGINT PRIMARY KEY,
    total_quantity INTEGER NOT NULL,
    reserved_quantity INTEGER NOT NULL DEFAULT 0,
    sold_quantity INTEGER NOT NULL DEFAULT 0,
    owner_id BIGINT NULL,
    updated_at VARCHAR(32) NOT NULL
);
-- One reservation per (order, product): a retried ReserveStock finds it instead of reserving twice.
CREATE TABLE reservations (
    id {{pk}},
    order_id BIGINT NOT NULL,
    product_id BIGINT NOT NULL,
    quantity INTEGER NOT NULL,
    status VARCHAR(20) NOT NULL,
    held INTEGER NOT NULL DEFAULT 0,
    expires_at VARCHAR(32) NOT NULL,
    created_at VARCHAR(32) NOT NULL,
    updated_at VARCHAR(32) NOT NULL
);
CREATE UNIQUE INDEX reservations_order_product ON reservations (order_id, product_id);
CREATE INDEX reservations_expiry ON reservations (status, expires_at);
