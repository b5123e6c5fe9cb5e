"""Commands the order service's own routes and timer send, and the order view they answer with.

The payment service's requests (GetOrderSummary, MarkOrderPaid) live in contracts/order.py.
"""

from __future__ import annotations

import msgspec

from microcommerce.contracts.commands import Command
from microcommerce.contracts.order import OrderLine
from microcommerce.http.idempotency import IdempotencyKey


class OrderView(msgspec.Struct, kw_only=True):
    id: int
    userId: int
    status: str
    items: list[OrderLine]
    totalQuantity: int
    totalAmount: float
    currency: str
    paymentId: int | None
    cancelReason: str | None
    createdAt: str
    updatedAt: str


class PlaceOrder(Command, frozen=True):
    """One product from the caller's cart; quantity None means the cart's quantity.

    With an Idempotency-Key, a retry answers the first request's outcome again. A rerun after a
    lost transaction race is safe too: it finds its own key abandoned and takes it over.
    """

    key_field = "user_id"
    user_id: int
    product_id: int
    quantity: int | None = None
    idempotency: IdempotencyKey | None = None


class CheckoutCart(Command, frozen=True):
    key_field = "user_id"
    user_id: int
    idempotency: IdempotencyKey | None = None


class GetOrder(Command, frozen=True):
    key_field = "order_id"
    order_id: int


class ListUserOrders(Command, frozen=True):
    key_field = "user_id"
    user_id: int
    limit: int = 50
    offset: int = 0


class CancelOrder(Command, frozen=True):
    key_field = "order_id"
    order_id: int
    actor_id: int
    actor_role: str


class ChangeOrderStatus(Command, frozen=True):
    key_field = "order_id"
    order_id: int
    status: str
    actor_id: int
    actor_role: str


class OrderExists(Command, frozen=True):
    key_field = "order_id"
    order_id: int


class SweepStaleOrders(Command, frozen=True):
    """Cancel pending orders that outlived their reservation; settle orders stuck reserving."""

    limit: int = 200
