"""Payment service contract: `payment-events`, keyed by order id (one order's payment events stay in order)."""

from __future__ import annotations

from typing import Any

import msgspec

from microcommerce.contracts.commands import Command
from microcommerce.contracts.events import PAYMENT_EVENTS, register_event

PAYMENT_CREATED = "PAYMENT_CREATED"
PAYMENT_SUCCEEDED = "PAYMENT_SUCCEEDED"
PAYMENT_FAILED = "PAYMENT_FAILED"
PAYMENT_REFUNDED = "PAYMENT_REFUNDED"


class PaymentData(msgspec.Struct, kw_only=True, frozen=True):
    id: int
    orderId: int
    userId: int
    provider: str
    providerPaymentId: str | None
    status: str  # pending | succeeded | failed | refunded
    amount: float
    currency: str
    failureReason: str | None = None


class PaymentView(msgspec.Struct, kw_only=True, frozen=True):
    """A payment as the payment service shows it (HTTP bodies and `ListOrderPayments`)."""

    id: int
    orderId: int
    userId: int
    provider: str
    providerPaymentId: str | None
    status: str  # pending | succeeded | failed | refunded
    currency: str
    amount: float
    failureReason: str | None = None
    paymentMethod: str | None = None
    metadata: dict[str, Any] | None = None
    refundReason: str | None = None
    createdAt: str
    updatedAt: str
    refundedAt: str | None = None


class ListOrderPayments(Command, frozen=True):
    """Every payment of one order, oldest first (e.g. for invariant checks: one succeeded per paid order)."""

    idempotent = True
    key_field = "order_id"
    reply_type = list[PaymentView]
    order_id: int


register_event(PAYMENT_CREATED, PAYMENT_EVENTS, PaymentData)
register_event(PAYMENT_SUCCEEDED, PAYMENT_EVENTS, PaymentData)
register_event(PAYMENT_FAILED, PAYMENT_EVENTS, PaymentData)
register_event(PAYMENT_REFUNDED, PAYMENT_EVENTS, PaymentData)
