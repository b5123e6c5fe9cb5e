-- The version of the inventory stock row whose levels are shown. Stock events carry it; the
-- highest one wins, whatever order events arrive in and whatever their timestamps say (two
-- changes in one millisecond have equal occurredAt). 0: no versioned stock event seen yet.
ALTER TABLE search_products ADD COLUMN stock_version BIGINT NOT NULL DEFAULT 0;
