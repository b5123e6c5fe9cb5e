-- The product data version shown (from PRODUCT_* events); the highest one wins, as for stock.
-- 0: no versioned product event seen yet.
ALTER TABLE search_products ADD COLUMN product_version BIGINT NOT NULL DEFAULT 0;
