-- The search read model: one row per product id, fed by product and inventory events.
-- has_product = 0 marks a placeholder (stock known, product data not yet); deleted = 1 is a
-- tombstone so a late event never brings a deleted product back. product_at / stock_at hold
-- the occurredAt of the last applied product / stock event; version guards concurrent writes.
CREATE TABLE search_products (
    product_id BIGINT PRIMARY KEY,
    name VARCHAR(500) NOT NULL,
    description {{text}} NOT NULL,
    category_id BIGINT NULL,
    category_name VARCHAR(200) NOT NULL,
    price_cents BIGINT NOT NULL,
    currency VARCHAR(10) NOT NULL,
    available_quantity INTEGER NOT NULL,
    has_product SMALLINT NOT NULL,
    deleted SMALLINT NOT NULL,
    product_at VARCHAR(32) NULL,
    stock_at VARCHAR(32) NULL,
    version INTEGER NOT NULL,
    updated_at VARCHAR(32) NOT NULL
);
CREATE INDEX search_products_visible ON search_products (has_product, deleted, product_id);
CREATE INDEX search_products_category ON search_products (category_id);
CREATE INDEX search_products_price ON search_products (price_cents);
