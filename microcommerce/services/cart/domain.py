"""Cart rules without I/O: quantities, one currency per cart, totals, what a paid order removes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from microcommerce.contracts.cart import CartLine, CartView
from microcommerce.contracts.money import from_cents, to_cents
from microcommerce.contracts.order import OrderLine
from microcommerce.errors import Conflict

MAX_LINE_QUANTITY = 999
DEFAULT_CURRENCY = "USD"


class Line(msgspec.Struct, kw_only=True, frozen=True):
    """One cart line as stored: money in cents, name and price snapshotted when added."""

    product_id: int
    product_name: str
    unit_price_cents: int
    currency: str
    quantity: int
    available: bool = True


def check_line_quantity(current: int, added: int) -> int:
    """The line's quantity after adding `added`; more than 999 of one product is refused."""
    total = current + added
    if total > MAX_LINE_QUANTITY:
        raise Conflict(f"A cart line holds at most {MAX_LINE_QUANTITY} units "
                       f"({current} already in the cart)")
    return total


def check_currency(lines: Iterable[Line], product_id: int, currency: str) -> None:
    """A cart is priced in one currency: its total must mean something."""
    for line in lines:
        if line.product_id != product_id and line.currency != currency:
            raise Conflict(f"The cart holds {line.currency} items; this product is priced in {currency}")


def cart_currency(lines: Sequence[Line]) -> str:
    return lines[0].currency if lines else DEFAULT_CURRENCY


def line_total_cents(line: Line) -> int:
    return line.unit_price_cents * line.quantity


def bought_quantities(items: Iterable[OrderLine]) -> dict[int, int]:
    """Units per product an order bought (an order may list a product more than once)."""
    bought: dict[int, int] = {}
    for item in items:
        if item.quantity > 0:
            bought[item.productId] = bought.get(item.productId, 0) + item.quantity
    return bought


def cart_view(cart_id: int, user_id: int, updated_at: str, lines: Sequence[Line]) -> CartView:
    """The cart as shown; totals count only the lines that can still be ordered."""
    items = [
        CartLine(productId=line.product_id, productName=line.product_name, quantity=line.quantity,
                 unitPrice=from_cents(line.unit_price_cents), lineTotal=from_cents(line_total_cents(line)),
                 available=line.available)
        for line in lines
    ]
    orderable = [line for line in lines if line.available]
    return CartView(
        id=cart_id, userId=user_id, items=items, totalQuantity=sum(line.quantity for line in orderable),
        totalAmount=from_cents(sum(line_total_cents(line) for line in orderable)),
        currency=cart_currency(lines), updatedAt=updated_at,
    )


def price_cents(price: float) -> int:
    """The product service's 2-place price as cents."""
    return to_cents(price)
