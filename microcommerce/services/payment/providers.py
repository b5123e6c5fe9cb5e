"""Mock payment providers: deterministic test modes, as real providers' sandboxes have.

stripe  `tok_visa`, `tok_mastercard` (the default) succeed; `tok_chargeDeclined` fails with
        "card_declined"; `tok_insufficientFunds` with "insufficient_funds"; any other token
        with "invalid_token". Charge ids look like `ch_<hex>`, refunds like `re_<hex>`.
paymob  `paymob_success` (the default) succeeds; `paymob_declined` fails with "declined"; any
        other token with "invalid_token". Ids look like `pm_<hex>` and `pmr_<hex>`.

A declined charge still gets a provider id (real providers record declines too) but moves no
money. Each provider keeps a ledger of captured and refunded amounts, which is what the
"charged twice?" question is ultimately about.
"""

from __future__ import annotations

import secrets
import threading
from typing import ClassVar

import msgspec


class ChargeResult(msgspec.Struct, frozen=True, kw_only=True):
    provider_payment_id: str
    succeeded: bool
    failure_reason: str | None = None


class MockProvider:
    name: ClassVar[str] = ""
    default_token: ClassVar[str] = ""
    charge_prefix: ClassVar[str] = ""
    refund_prefix: ClassVar[str] = ""
    # token -> failure reason (None: the charge succeeds)
    outcomes: ClassVar[dict[str, str | None]] = {}

    def __init__(self) -> None:
        self._lock = threading.Lock()  # workers are threads; they share one provider
        self.captured: dict[str, int] = {}
        self.refunded: dict[str, int] = {}

    def outcome(self, token: str | None) -> str | None:
        """The failure reason a token leads to, or None when it succeeds."""
        return self.outcomes.get(token or self.default_token, "invalid_token")

    def charge(self, amount_cents: int, currency: str, token: str | None) -> ChargeResult:
        charge_id = f"{self.charge_prefix}_{secrets.token_hex(12)}"
        failure = self.outcome(token)
        if failure is None:
            with self._lock:
                self.captured[charge_id] = amount_cents
        return ChargeResult(provider_payment_id=charge_id, succeeded=failure is None, failure_reason=failure)

    def refund(self, provider_payment_id: str) -> str:
        """Give a captured charge back (idempotent per charge); returns the refund id."""
        with self._lock:
            if provider_payment_id in self.captured:
                self.refunded.setdefault(provider_payment_id, self.captured[provider_payment_id])
        return f"{self.refund_prefix}_{secrets.token_hex(12)}"


class StripeMock(MockProvider):
    name = "stripe"
    default_token = "tok_mastercard"
    charge_prefix = "ch"
    refund_prefix = "re"
    outcomes = {
        "tok_visa": None,
        "tok_mastercard": None,
        "tok_chargeDeclined": "card_declined",
        "tok_insufficientFunds": "insufficient_funds",
    }


class PaymobMock(MockProvider):
    name = "paymob"
    default_token = "paymob_success"
    charge_prefix = "pm"
    refund_prefix = "pmr"
    outcomes = {"paymob_success": None, "paymob_declined": "declined"}


def default_providers() -> dict[str, MockProvider]:
    return {provider.name: provider for provider in (StripeMock(), PaymobMock())}


# One set per process, shared by every worker (a real client would be a pooled SDK object).
PROVIDERS = default_providers()
