CREATE TABLE categories (
    id {{pk}},
    name VARCHAR(200) NOT NULL,
    -- lower-cased, trimmed name: names are unique regardless of case
    name_key VARCHAR(200) NOT NULL,
    slug VARCHAR(220) NOT NULL,
    description {{text}} NOT NULL,
    created_at VARCHAR(32) NOT NULL,
    updated_at VARCHAR(32) NOT NULL
);
CREATE UNIQUE INDEX categories_name_key ON categories (name_key);
CREATE UNIQUE INDEX categories_slug ON categories (slug);
CREATE TABLE products (
    id {{pk}},
    category_id BIGINT NOT NULL,
    name VARCHAR(200) NOT NULL,
    description {{text}} NOT NULL,
    price_cents BIGINT NOT NULL,
    currency CHAR(3) NOT NULL,
    stock_quantity INTEGER NOT NULL,
    created_by BIGINT NULL,
    created_at VARCHAR(32) NOT NULL,
    updated_at VARCHAR(32) NOT NULL,
    -- soft delete: a deleted product keeps its row (orders and carts refer to its id)
    deleted_at VARCHAR(32) NULL
);
CREATE INDEX products_category ON products (category_id, deleted_at);
CREATE INDEX products_price ON products (price_cents);
CREATE TABLE product_images (
    id {{pk}},
    product_id BIGINT NOT NULL,
    url VARCHAR(2048) NOT NULL,
    is_primary INTEGER NOT NULL,
    sort_order INTEGER NOT NULL
);
CREATE INDEX product_images_product ON product_images (product_id, sort_order);
