"""Order service contract: `order-events` and what the payment service asks of orders."""

from __future__ import annotations

import msgspec

from microcommerce.contracts.commands import Command
from microcommerce.contracts.events import ORDER_EVENTS, register_event

ORDER_CREATED = "ORDER_CREATED"
ORDER_PAID = "ORDER_PAID"
ORDER_SHIPPED = "ORDER_SHIPPED"
ORDER_DELIVERED = "ORDER_DELIVERED"
ORDER_CANCELLED = "ORDER_CANCELLED"
# A shipped or delivered order whose payment was refunded (a paid one is cancelled instead).
ORDER_REFUNDED = "ORDER_REFUNDED"


class OrderLine(msgspec.Struct, kw_only=True, frozen=True):
    productId: int
    productName: str
    quantity: int
    unitPrice: float
    lineTotal: float


class OrderData(msgspec.Struct, kw_only=True, frozen=True):
    """Data of every ORDER_* event: the order after the change."""

    id: int
    userId: int
    status: str
    items: list[OrderLine]
    totalAmount: float
    currency: str = "USD"
    reason: str = ""
    paymentId: int | None = None
    # Status before this change; on ORDER_CANCELLED "paid" tells the payment service to refund.
    previousStatus: str = ""


class OrderSummary(msgspec.Struct, kw_only=True, frozen=True):
    id: int
    userId: int
    status: str
    totalAmount: float
    currency: str


class GetOrderSummary(Command, frozen=True):
    """Answered with OrderSummary; NotFound when missing."""

    idempotent = True
    key_field = "order_id"
    reply_type = OrderSummary
    order_id: int


class MarkOrderPaid(Command, frozen=True):
    """Idempotent: a paid order stays paid. Conflict when the order is cancelled/shipped."""

    idempotent = True
    key_field = "order_id"
    reply_type = OrderSummary
    order_id: int
    payment_id: int


register_event(ORDER_CREATED, ORDER_EVENTS, OrderData)
register_event(ORDER_PAID, ORDER_EVENTS, OrderData)
register_event(ORDER_SHIPPED, ORDER_EVENTS, OrderData)
register_event(ORDER_DELIVERED, ORDER_EVENTS, OrderData)
register_event(ORDER_CANCELLED, ORDER_EVENTS, OrderData)
register_event(ORDER_REFUNDED, ORDER_EVENTS, OrderData)
