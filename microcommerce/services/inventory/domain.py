"""Stock rules without I/O: the levels of a product, what each change does to them, expiry.

The conditional SQL updates in store.py enforce the same rules under concurrency; these
functions say what the rules are (and give the messages clients see).
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from microcommerce.contracts.events import iso_from_epoch
from microcommerce.contracts.inventory import ReserveLine
from microcommerce.errors import BadRequest, Conflict, Forbidden

RESERVED, RELEASED, CONFIRMED, EXPIRED = "reserved", "released", "confirmed", "expired"
RELEASE_REASONS = ("cancelled", "expired", "released")


class StockLevels(msgspec.Struct, frozen=True):
    """total = units on hand (reserved ones included); sold units have left the warehouse."""

    total: int
    reserved: int
    sold: int = 0

    @property
    def available(self) -> int:
        return self.total - self.reserved

    @property
    def stock_in(self) -> int:
        """Everything ever put in stock (initial + adjustments) = available + reserved + sold."""
        return self.total + self.sold


def initial_quantity(stock_quantity: int) -> int:
    """A product announced with a negative stock starts empty rather than owing units."""
    return max(stock_quantity, 0)


def reserve(levels: StockLevels, quantity: int, product_id: int) -> StockLevels:
    check_quantity(quantity)
    if quantity > levels.available:
        raise Conflict(shortage_message(product_id, quantity, levels.available))
    return StockLevels(levels.total, levels.reserved + quantity, levels.sold)


def check_still_sold(discontinued: bool, product_id: int) -> None:
    if discontinued:
        raise Conflict(discontinued_message(product_id))


def discontinued_message(product_id: int) -> str:
    return f"Product {product_id} was deleted and can no longer be ordered"


def release(levels: StockLevels, quantity: int) -> StockLevels:
    return StockLevels(levels.total, max(levels.reserved - quantity, 0), levels.sold)


def confirm(levels: StockLevels, quantity: int) -> StockLevels:
    """Reserved units are sold: they leave both the reserved count and the units on hand."""
    return StockLevels(levels.total - quantity, levels.reserved - quantity, levels.sold + quantity)


def set_total(levels: StockLevels, total: int, product_id: int) -> StockLevels:
    if total < 0:
        raise BadRequest("totalQuantity must be >= 0")
    if total < levels.reserved:
        raise Conflict(f"totalQuantity {total} is below the {levels.reserved} units reserved "
                       f"for product {product_id}")
    return StockLevels(total, levels.reserved, levels.sold)


def check_may_adjust(actor_role: str, actor_id: int, owner_id: int | None) -> None:
    """Admins adjust any stock; a supplier only the stock of products they created."""
    if actor_role == "admin":
        return
    if actor_role != "supplier" or owner_id is None or int(owner_id) != actor_id:
        raise Forbidden("Only an admin or the supplier of this product may adjust its stock")


def shortage_message(product_id: int, wanted: int, available: int) -> str:
    return f"Insufficient stock for product {product_id}: requested {wanted}, available {available}"


def check_quantity(quantity: int) -> None:
    if quantity <= 0:
        raise BadRequest("quantity must be a positive integer")


def merge_lines(lines: list[ReserveLine]) -> list[ReserveLine]:
    """One line per product, in product order (a fixed lock order: no deadlock between orders)."""
    if not lines:
        raise BadRequest("At least one line is required")
    totals: dict[int, int] = {}
    for line in lines:
        check_quantity(line.quantity)
        if line.productId <= 0:
            raise BadRequest("productId must be a positive integer")
        totals[line.productId] = totals.get(line.productId, 0) + line.quantity
    return [ReserveLine(product_id, totals[product_id]) for product_id in sorted(totals)]


def status_after_release(reason: str) -> str:
    if reason not in RELEASE_REASONS:
        raise BadRequest(f"reason must be one of {', '.join(RELEASE_REASONS)}")
    return EXPIRED if reason == "expired" else RELEASED


def expiry(now_epoch: float, ttl_s: int, requested: str | None) -> str:
    """The reservation's expiry as a canonical UTC timestamp (they compare as text)."""
    if requested is None:
        return iso_from_epoch(now_epoch + ttl_s)
    try:
        moment = datetime.fromisoformat(requested)
    except ValueError:
        raise BadRequest("expiresAt must be an ISO-8601 timestamp") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # a naive timestamp is read as UTC, like every other here
    return iso_from_epoch(moment.timestamp())

