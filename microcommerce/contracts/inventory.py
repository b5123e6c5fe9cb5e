"""Inventory service contract: `inventory-events` and the reservation requests of the order saga."""

from __future__ import annotations

import msgspec

from microcommerce.contracts.commands import Command
from microcommerce.contracts.events import INVENTORY_EVENTS, register_event

STOCK_RESERVED = "STOCK_RESERVED"
STOCK_RELEASED = "STOCK_RELEASED"
STOCK_CONFIRMED = "STOCK_CONFIRMED"
STOCK_UPDATED = "STOCK_UPDATED"


class StockLevel(msgspec.Struct, kw_only=True, frozen=True):
    productId: int
    totalQuantity: int
    reservedQuantity: int
    availableQuantity: int
    soldQuantity: int = 0
    # The product was deleted: its remaining stock takes no new reservations.
    discontinued: bool = False


class StockChanged(msgspec.Struct, kw_only=True, frozen=True):
    """Data of every stock event: what happened and the product's levels afterwards.

    `reason` on STOCK_RELEASED is one of "cancelled", "expired", "released"; on STOCK_UPDATED
    it is "initial" (from PRODUCT_CREATED), "adjusted" or "discontinued" (the product was
    deleted), and `quantity` is the change of totalQuantity, so the stock put in is the sum of
    STOCK_UPDATED quantities. `version` grows with every change of the product's stock row: a
    projection keeps the levels of the highest version it has seen.
    """

    productId: int
    totalQuantity: int
    reservedQuantity: int
    availableQuantity: int
    soldQuantity: int = 0
    orderId: int | None = None
    reservationId: int | None = None
    quantity: int = 0
    reason: str = ""
    version: int = 0


class ReserveLine(msgspec.Struct, frozen=True):
    productId: int
    quantity: int


class Reservation(msgspec.Struct, kw_only=True, frozen=True):
    id: int
    orderId: int
    productId: int
    quantity: int
    status: str  # reserved | released | confirmed | expired
    expiresAt: str


class ReserveStock(Command, frozen=True):
    """All lines or none (409 Conflict when any is short). Idempotent per order."""

    idempotent = True
    key_field = "order_id"
    reply_type = list[Reservation]
    order_id: int
    lines: list[ReserveLine]
    expires_at: str | None = None


class ReleaseOrderStock(Command, frozen=True):
    """Release the order's live reservations; idempotent."""

    idempotent = True
    key_field = "order_id"
    reply_type = list[Reservation]
    order_id: int
    reason: str = "cancelled"


class ConfirmOrderStock(Command, frozen=True):
    """Deduct the order's reserved stock for good (shipped); idempotent."""

    idempotent = True
    key_field = "order_id"
    reply_type = list[Reservation]
    order_id: int


class SetStockTotal(Command, frozen=True):
    """Set a product's units on hand (the catalog's PATCH stockQuantity; the caller checked who may).

    Answered with the STOCK_UPDATED data (levels and version after the change); 409 Conflict
    below the reserved quantity; 404 NotFound while inventory has no stock for it yet.
    Not idempotent: sent again after someone else's change, it would undo that change.
    """

    key_field = "product_id"
    reply_type = StockChanged
    product_id: int
    total_quantity: int


class DiscontinueStock(Command, frozen=True):
    """The product was deleted: refuse new reservations of it (reserved units stay reserved). Idempotent."""

    idempotent = True
    key_field = "product_id"
    reply_type = StockLevel
    product_id: int


class GetStock(Command, frozen=True):
    idempotent = True
    key_field = "product_id"
    reply_type = StockLevel
    product_id: int


register_event(STOCK_RESERVED, INVENTORY_EVENTS, StockChanged)
register_event(STOCK_RELEASED, INVENTORY_EVENTS, StockChanged)
register_event(STOCK_CONFIRMED, INVENTORY_EVENTS, StockChanged)
register_event(STOCK_UPDATED, INVENTORY_EVENTS, StockChanged)
