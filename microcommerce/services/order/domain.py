"""Order rules without I/O: the status machine, who may do what, lines and totals from a cart."""

from __future__ import annotations

import msgspec

from microcommerce.contracts.cart import CartLine
from microcommerce.contracts.events import iso_from_epoch
from microcommerce.contracts.money import to_cents
from microcommerce.errors import BadRequest, Conflict, Forbidden

PENDING, PAID, SHIPPED, DELIVERED, CANCELLED = "pending", "paid", "shipped", "delivered", "cancelled"
# A shipped or delivered order whose payment was refunded: the goods stay sold, the money went back.
REFUNDED = "refunded"
STATUSES = (PENDING, PAID, SHIPPED, DELIVERED, CANCELLED, REFUNDED)
# Internal states, never shown: stock is being reserved / the reservation was refused.
RESERVING, FAILED = "reserving", "failed"

TRANSITIONS: dict[str, tuple[str, ...]] = {
    PENDING: (PAID, CANCELLED),
    PAID: (SHIPPED, CANCELLED),
    SHIPPED: (DELIVERED,),
}
# The order sweep cancels a pending order this long after its reservation expired, giving
# inventory's expiry sweep (and its STOCK_RELEASED "expired" event) a few turns to do it first.
MIN_EXPIRY_GRACE_S = 1.0
EXPIRY_GRACE_SWEEPS = 3
# Statuses an order is cancelled from when inventory reports its reservation lapsed: a paid
# order whose units were taken back before ORDER_PAID pinned them cannot ship (it is refunded).
LAPSE_CANCELS = (PENDING, PAID)
USER_CANCEL_REASON = "cancelled by user"
ADMIN_CANCEL_REASON = "cancelled by admin"
EXPIRED_REASON = "reservation expired"
REFUND_REASON = "payment refunded"


class Line(msgspec.Struct, frozen=True):
    product_id: int
    product_name: str
    quantity: int
    unit_price_cents: int

    @property
    def total_cents(self) -> int:
        return self.unit_price_cents * self.quantity


def is_visible(status: str) -> bool:
    return status in STATUSES


def can_transition(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, ())


def check_status(value: str) -> str:
    if value not in STATUSES:
        raise BadRequest(f"status must be one of {', '.join(STATUSES)}")
    return value


def check_transition(current: str, target: str) -> None:
    if not can_transition(current, target):
        raise Conflict(f"Cannot change an order from {current} to {target}")


def check_cancellable(status: str) -> None:
    if status != PENDING:
        raise Conflict(f"Only a pending order can be cancelled; this order is {status}")


def check_owner_or_admin(actor_role: str, actor_id: int, owner_id: int) -> None:
    if actor_role != "admin" and actor_id != owner_id:
        raise Forbidden("Only the owner or an admin may do this")


def cancel_reason(actor_id: int, owner_id: int) -> str:
    """Who cancelled, as the customer and the payment service will read it."""
    return USER_CANCEL_REASON if actor_id == owner_id else ADMIN_CANCEL_REASON


def payment_applies(status: str) -> bool:
    """True: a pending order becomes paid. False: already paid, nothing to do. Else Conflict."""
    if status == PENDING:
        return True
    if status == PAID:
        return False
    raise Conflict(f"Order is {status} and can no longer be paid")


def status_after_refund(status: str) -> str | None:
    """Where the refund of the payment that paid an order takes it; None: nothing to do.

    A paid order is cancelled (its reservation is released, exactly as when an admin cancels a
    paid order, which refunds it). A shipped or delivered order keeps its stock sold and ends
    `refunded`. Either way no paid/shipped/delivered order is left without a succeeded payment.
    """
    if status == PAID:
        return CANCELLED
    if status in (SHIPPED, DELIVERED):
        return REFUNDED
    return None


def line_from_cart(items: list[CartLine], product_id: int, quantity: int | None) -> Line:
    """The cart's line for `product_id`, for the cart's quantity or fewer units."""
    cart_line = next((item for item in items if item.productId == product_id), None)
    if cart_line is None:
        raise BadRequest(f"Product {product_id} is not in your cart; add it to the cart first")
    check_orderable(cart_line)
    wanted = cart_line.quantity if quantity is None else quantity
    if wanted <= 0:
        raise BadRequest("quantity must be a positive integer")
    if wanted > cart_line.quantity:
        raise BadRequest(f"quantity {wanted} exceeds the {cart_line.quantity} in your cart for product "
                         f"{product_id}")
    return _line(cart_line, wanted)


def lines_from_cart(items: list[CartLine]) -> list[Line]:
    """Every line of the cart, all or nothing: a line of a deleted product refuses the checkout."""
    for item in items:
        check_orderable(item)
    lines = [_line(item, item.quantity) for item in items if item.quantity > 0]
    if not lines:
        raise BadRequest("Your cart is empty")
    return lines


def check_orderable(item: CartLine) -> None:
    if not item.available:
        raise Conflict(f"Product {item.productId} ({item.productName}) was deleted and can no longer be "
                       "ordered; remove it from your cart")


def _line(item: CartLine, quantity: int) -> Line:
    return Line(item.productId, item.productName, quantity, to_cents(item.unitPrice))


def check_line_quantities(lines: list[Line], max_quantity: int) -> None:
    """One order may not hold more than `max_quantity` units of one product."""
    for line in lines:
        if line.quantity > max_quantity:
            raise Conflict(f"At most {max_quantity} units of one product per order; you asked for "
                           f"{line.quantity} of product {line.product_id}")


def check_pending_limit(open_orders: int, max_open: int) -> None:
    """A user holds at most `max_open` unpaid orders (and their reserved stock) at once."""
    if open_orders >= max_open:
        raise Conflict(f"You already have {open_orders} unpaid orders (the limit is {max_open}); "
                       "pay or cancel one before ordering more")


# -- Idempotency-Key bookkeeping -----------------------------------------------------------------
KEY_RUNNING, KEY_ABANDONED, KEY_DONE = "running", "abandoned", "done"


def key_expired(created_at: str, now_epoch: float, ttl_s: float) -> bool:
    return created_at < iso_from_epoch(now_epoch - ttl_s)


def claim_is_stale(updated_at: str, now_epoch: float, stale_after_s: float) -> bool:
    """A running claim this old lost its request (a crash): a retry may take it over."""
    return updated_at < iso_from_epoch(now_epoch - stale_after_s)


def claim_stale_after_s(cart_timeout_s: float, inventory_timeout_s: float) -> float:
    """Longer than placing an order can take: read the cart, reserve, maybe release, plus slack."""
    return cart_timeout_s + 2 * inventory_timeout_s + 5.0


def total_cents(lines: list[Line]) -> int:
    return sum(line.total_cents for line in lines)


def stale_cutoff(now_epoch: float, reservation_ttl_s: float, sweep_interval_s: float) -> str:
    """Orders created before this instant have outlived their reservation (plus grace)."""
    grace = max(MIN_EXPIRY_GRACE_S, EXPIRY_GRACE_SWEEPS * sweep_interval_s)
    return iso_from_epoch(now_epoch - reservation_ttl_s - grace)
