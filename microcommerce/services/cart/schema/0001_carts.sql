-- Projection of the user service's users (from user-events). A deleted user stays as a
-- tombstone so a late or replayed USER_CREATED/USER_UPDATED can never bring the cart back.
CREATE TABLE cart_users (
    id BIGINT PRIMARY KEY,
    name VARCHAR(200) NOT NULL,
    email VARCHAR(255) NOT NULL,
    role VARCHAR(20) NOT NULL,
    account_status VARCHAR(20) NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    updated_at VARCHAR(32) NOT NULL
);
CREATE TABLE carts (
    id {{pk}},
    user_id BIGINT NOT NULL,
    created_at VARCHAR(32) NOT NULL,
    updated_at VARCHAR(32) NOT NULL
);
CREATE UNIQUE INDEX carts_user ON carts (user_id);
-- One line per product; name and price are snapshots taken when the product was added.
CREATE TABLE cart_items (
    cart_id BIGINT NOT NULL,
    product_id BIGINT NOT NULL,
    product_name VARCHAR(200) NOT NULL,
    unit_price_cents BIGINT NOT NULL,
    currency CHAR(3) NOT NULL,
    quantity INTEGER NOT NULL,
    added_at VARCHAR(32) NOT NULL,
    updated_at VARCHAR(32) NOT NULL,
    PRIMARY KEY (cart_id, product_id)
);
