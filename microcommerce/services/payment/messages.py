"""Commands the payment service's actors handle; the payment view lives in the contract."""

from __future__ import annotations

from typing import Any

from microcommerce.contracts.commands import Command
from microcommerce.contracts.payment import ListOrderPayments, PaymentView

__all__ = ["ChargeOrder", "GetPayment", "ListOrderPayments", "ListUserPayments", "PaymentView",
           "RefundPayment"]


class ChargeOrder(Command, frozen=True):
    """Keyed by order: two charges of one order queue on the same worker, never run together."""

    key_field = "order_id"
    retry_transient = False  # the provider may have charged already: never charge twice
    order_id: int
    user_id: int
    provider: str
    payment_method: str | None = None
    payment_token: str | None = None
    metadata: dict[str, Any] | None = None


class GetPayment(Command, frozen=True):
    key_field = "payment_id"
    payment_id: int


class ListUserPayments(Command, frozen=True):
    key_field = "user_id"
    user_id: int
    limit: int = 50
    offset: int = 0


class RefundPayment(Command, frozen=True):
    key_field = "payment_id"
    payment_id: int
    reason: str = "requested_by_admin"
