"""Commands the payment service's actors handle; the payment view lives in the contract."""

from __future__ import annotations

from typing import Any

import msgspec

from microcommerce.contracts.commands import Command
from microcommerce.contracts.payment import ListOrderPayments, PaymentView

__all__ = ["ChargeAnswer", "ChargeOrder", "GetPayment", "ListOrderPayments", "ListUserPayments", "PaymentView",
           "ReconcilePayments", "ReconcileReport", "RefundPayment"]


class ChargeAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """What a charge answers over HTTP: kept as is under an Idempotency-Key and replayed."""

    status: int
    body: msgspec.Raw  # JSON


class ChargeOrder(Command, frozen=True):
    """Keyed by order: two charges of one order queue on the same worker, never run together."""

    key_field = "order_id"
    reply_type = ChargeAnswer
    retry_transient = False  # the provider may have charged already: never charge twice
    order_id: int
    user_id: int
    provider: str
    payment_method: str | None = None
    payment_token: str | None = None
    metadata: dict[str, Any] | None = None
    idempotency_key: str | None = None  # the client's Idempotency-Key header


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


class ReconcileReport(msgspec.Struct, frozen=True, kw_only=True):
    settled: int  # pending attempts whose outcome is now recorded
    inFlight: int  # still pending: young enough that another worker may be charging them

class ReconcilePayments(Command, frozen=True):
    """Settle charges written ahead but never settled (a crash between provider and commit)."""

    reply_type = ReconcileReport
    limit: int = 200

