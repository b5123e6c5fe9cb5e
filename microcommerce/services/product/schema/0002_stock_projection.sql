-- stock_quantity is a projection of the inventory service's units on hand (the one source of
-- truth for stock), fed by its stock events; stock_version is the version of the stock row it
-- shows, so an older event arriving late never overwrites a newer number.
ALTER TABLE products ADD COLUMN stock_version BIGINT NOT NULL DEFAULT 0;
