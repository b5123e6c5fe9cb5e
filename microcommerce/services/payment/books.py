"""Do our payment records and the providers' books agree? (tests and chaos runs ask this)

Every charge a provider holds must have the payment record written ahead under its key, settled
the same way; every refund must be of a captured charge whose payment says refunded; no order
may keep more than one captured, unrefunded charge.
"""

from __future__ import annotations

from collections import Counter

import msgspec

from microcommerce.services.payment.domain import PENDING, REFUNDED, SUCCEEDED
from microcommerce.services.payment.providers import LedgerCharge, LedgerRefund


class BookedPayment(msgspec.Struct, frozen=True, kw_only=True):
    """A payment record as the audit compares it with the providers' books."""

    id: int
    orderId: int
    provider: str
    status: str
    amountCents: int
    providerPaymentId: str | None
    idempotencyKey: str | None


def disagreements(charges: list[LedgerCharge], refunds: list[LedgerRefund],
                  payments: list[BookedPayment], *, settled: bool = True) -> list[str]:
    """Every way the books and the records disagree, one line each (empty: they agree).

    `settled`: after reconciliation no payment may still be pending.
    """
    problems: list[str] = []
    by_key = {(p.provider, p.idempotencyKey): p for p in payments if p.idempotencyKey}
    for charge in charges:
        payment = by_key.get((charge.provider, charge.idempotencyKey))
        name = f"{charge.provider} charge {charge.chargeId} (key {charge.idempotencyKey})"
        if payment is None:
            problems.append(f"{name} has no payment record")
        elif payment.status == PENDING:
            if settled:
                problems.append(f"{name}: payment {payment.id} is still pending")
        elif charge.succeeded != (payment.status in (SUCCEEDED, REFUNDED)):
            problems.append(f"{name} {'captured' if charge.succeeded else 'declined'} but payment {payment.id} "
                            f"is {payment.status}")
        elif payment.providerPaymentId != charge.chargeId:
            problems.append(f"{name}: payment {payment.id} names {payment.providerPaymentId}")
        elif payment.amountCents != charge.amountCents:
            problems.append(f"{name} took {charge.amountCents} but payment {payment.id} says {payment.amountCents}")
    captured = {c.chargeId for c in charges if c.succeeded}
    refunded = {r.chargeId for r in refunds}
    problems += [f"{r.provider} refund {r.refundId} is of no captured charge ({r.chargeId})"
                 for r in refunds if r.chargeId not in captured]
    for payment in payments:
        if payment.status == REFUNDED and payment.providerPaymentId not in refunded:
            problems.append(f"payment {payment.id} says refunded but {payment.providerPaymentId} was not")
        if payment.status == SUCCEEDED and payment.providerPaymentId in refunded:
            problems.append(f"payment {payment.id} says succeeded but {payment.providerPaymentId} was refunded")
        if payment.status == SUCCEEDED and payment.providerPaymentId not in captured:
            problems.append(f"payment {payment.id} says succeeded but no provider captured it")
    kept = Counter(p.orderId for p in payments if p.status == SUCCEEDED)
    problems += [f"order {order_id} was charged {count} times" for order_id, count in kept.items() if count > 1]
    return problems
