-- A line whose product was deleted stays in the cart, flagged, so the customer sees why it can
-- no longer be ordered (and the order service refuses it with that reason).
ALTER TABLE cart_items ADD COLUMN available INTEGER NOT NULL DEFAULT 1;
