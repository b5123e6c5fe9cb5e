"""Payment rules without I/O: providers, who may charge what, refundability, metadata limits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from microcommerce import environment
from microcommerce.errors import BadRequest, Conflict, Forbidden

PENDING = "pending"  # written ahead: the provider may or may not have charged yet
SUCCEEDED = "succeeded"
FAILED = "failed"
REFUNDED = "refunded"
DUPLICATE_CHARGE = "duplicate_charge"  # refund reason: another attempt had paid the order first
INTERRUPTED = "interrupted"  # failure reason: the attempt never reached the provider

PROVIDERS = ("stripe", "paymob")
DEFAULT_PROVIDER = "stripe"
METADATA_MAX_BYTES = 4096


def check_provider(name: str | None) -> str:
    """The provider to use: default stripe; names are case-insensitive; unknown → 400."""
    provider = (name or DEFAULT_PROVIDER).strip().lower()
    if provider not in PROVIDERS:
        raise BadRequest(f"provider must be one of {', '.join(PROVIDERS)}")
    return provider


def check_metadata(metadata: dict[str, Any] | None) -> dict[str, Any] | None:
    """Metadata is the client's free-form note; bounded so it cannot bloat the payments table."""
    if metadata is not None and len(msgspec.json.encode(metadata)) > METADATA_MAX_BYTES:
        raise BadRequest(f"metadata must encode to at most {METADATA_MAX_BYTES} bytes of JSON")
    return metadata


def check_chargeable(order_user_id: int, order_status: str, caller_id: int, *, already_paid: bool,
                     cancelled: bool) -> None:
    """Only the order's owner may pay it, once, and only while it is pending.

    `already_paid` / `cancelled` are what this service itself knows; they win over the order
    summary, which may lag behind (a lost mark-paid request, an event not yet consumed).
    """
    if order_user_id != caller_id:
        raise Forbidden("This order belongs to another user")
    if already_paid:
        raise Conflict("Order is already paid")
    if cancelled:
        raise Conflict("Order is cancelled; it can no longer be charged")
    if order_status != PENDING:
        raise Conflict(f"Order is {order_status}; only a pending order can be charged")


def check_refundable(status: str) -> None:
    if status != SUCCEEDED:
        raise Conflict(f"Payment is {status}; only a succeeded payment can be refunded")


def decline_message(failure_reason: str | None) -> str:
    """The message a client sees next to a declined payment (402)."""
    reasons = {
        "card_declined": "the card was declined",
        "insufficient_funds": "insufficient funds",
        "invalid_token": "the payment token is not valid",
        "declined": "the payment was declined",
        INTERRUPTED: "the charge was interrupted before it reached the provider; nothing was charged",
    }
    return f"Payment failed: {reasons.get(failure_reason or '', failure_reason or 'unknown reason')}"


def new_attempt_key() -> str:
    """The idempotency key a charge attempt is sent to the provider with (written ahead)."""
    return f"pay_{environment.token_hex(16)}"


def refund_key(attempt_key: str | None, payment_id: int) -> str:
    """One refund key per payment: a retried refund is the same refund at the provider."""
    return f"refund_{attempt_key or f'payment_{payment_id}'}"


def in_flight_horizon_s(charge_timeout_s: float) -> float:
    """How long a pending attempt may still be on its way to the provider from some worker.

    Past it, an attempt the provider has never seen never reached it and never will: it can
    be marked failed without racing the worker that wrote it.
    """
    return max(2 * charge_timeout_s, 5.0)


def may_abandon(created_at: str, now_epoch: float, horizon_s: float) -> bool:
    return datetime.fromisoformat(created_at).timestamp() < now_epoch - horizon_s


def answer_status(status: str) -> int:
    """HTTP status of a charge that ended in `status` (a refunded one was undone: 409)."""
    return {SUCCEEDED: 201, FAILED: 402}.get(status, 409)


class ChargeInProgress(Conflict):
    """Another attempt at this order is on its way to the provider; its outcome decides."""

    def __init__(self) -> None:
        super().__init__("A charge of this order is in progress; retry shortly")
