-- Grows with every PRODUCT_CREATED / PRODUCT_UPDATED this row announces; the events carry it
-- so a projection keeps the newest product data whatever order (or instant) events arrive in.
ALTER TABLE products ADD COLUMN data_version BIGINT NOT NULL DEFAULT 1;
