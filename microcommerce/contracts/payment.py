"""Payment service contract: `payment-events`."""

from __future__ import annotations

import msgspec

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


register_event(PAYMENT_CREATED, PAYMENT_EVENTS, PaymentData)
register_event(PAYMENT_SUCCEEDED, PAYMENT_EVENTS, PaymentData)
register_event(PAYMENT_FAILED, PAYMENT_EVENTS, PaymentData)
register_event(PAYMENT_REFUNDED, PAYMENT_EVENTS, PaymentData)
