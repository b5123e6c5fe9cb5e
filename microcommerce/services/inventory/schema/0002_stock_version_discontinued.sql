-- A discontinued product (deleted in the catalog) takes no new reservations: the reservation
-- is the gate every order passes, so no order can take a deleted product.
ALTER TABLE stock ADD COLUMN discontinued INTEGER NOT NULL DEFAULT 0;
-- Bumped by every change of a stock row: projections of it (the catalog's stockQuantity) keep
-- the newest levels whatever order events reach them in.
ALTER TABLE stock ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
