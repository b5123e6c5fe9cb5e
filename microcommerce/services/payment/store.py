"""SQL of the payment service (its own database only). Amounts are integer cents."""

from __future__ import annotations

from typing import Any

import msgspec

from microcommerce.contracts.events import utc_now_iso
from microcommerce.contracts.money import from_cents
from microcommerce.contracts.payment import PaymentData, PaymentView
from microcommerce.services.payment.books import BookedPayment
from microcommerce.services.payment.domain import FAILED, PENDING, REFUNDED, SUCCEEDED
from microcommerce.storage import Executor

_COLUMNS = ("id, order_id, user_id, provider, provider_payment_id, payment_method, status, amount_cents, "
            "currency, failure_reason, refund_reason, metadata, created_at, updated_at, refunded_at, idempotency_key")


class NewPayment(msgspec.Struct, frozen=True, kw_only=True):
    order_id: int
    user_id: int
    provider: str
    provider_payment_id: str | None  # None while pending: the provider has not answered yet
    payment_method: str | None
    status: str
    amount_cents: int
    currency: str
    failure_reason: str | None
    metadata: dict[str, Any] | None
    idempotency_key: str | None = None  # what the provider is told, so it charges at most once


def to_view(row: dict[str, Any]) -> PaymentView:
    metadata = msgspec.json.decode(row["metadata"]) if row["metadata"] else None
    return PaymentView(
        id=int(row["id"]), orderId=int(row["order_id"]), userId=int(row["user_id"]),
        provider=row["provider"], providerPaymentId=row["provider_payment_id"], status=row["status"],
        currency=row["currency"], amount=from_cents(int(row["amount_cents"])),
        failureReason=row["failure_reason"], paymentMethod=row["payment_method"], metadata=metadata,
        refundReason=row["refund_reason"], createdAt=row["created_at"], updatedAt=row["updated_at"],
        refundedAt=row["refunded_at"],
    )


def to_event(view: PaymentView) -> PaymentData:
    return PaymentData(id=view.id, orderId=view.orderId, userId=view.userId, provider=view.provider,
                       providerPaymentId=view.providerPaymentId, status=view.status, amount=view.amount,
                       currency=view.currency, failureReason=view.failureReason)


async def by_id(db: Executor, payment_id: int) -> dict[str, Any] | None:
    return await db.fetch_one(f"SELECT {_COLUMNS} FROM payments WHERE id = ?", payment_id)


async def for_order(db: Executor, order_id: int) -> list[dict[str, Any]]:
    return await db.fetch_all(f"SELECT {_COLUMNS} FROM payments WHERE order_id = ? ORDER BY id", order_id)


async def for_user(db: Executor, user_id: int, limit: int, offset: int) -> list[dict[str, Any]]:
    return await db.fetch_all(
        f"SELECT {_COLUMNS} FROM payments WHERE user_id = ? ORDER BY id DESC LIMIT ? OFFSET ?",
        user_id, limit, offset,
    )


async def has_succeeded(db: Executor, order_id: int) -> bool:
    """True once the order has been paid here (a refund does not make it payable again)."""
    row = await db.fetch_one("SELECT id FROM payments WHERE success_order_id = ?", order_id)
    return row is not None


async def insert(tx: Executor, payment: NewPayment) -> int:
    now = utc_now_iso()
    metadata = msgspec.json.encode(payment.metadata).decode() if payment.metadata is not None else None
    result = await tx.execute(
        "INSERT INTO payments (order_id, user_id, provider, provider_payment_id, payment_method, status, "
        "amount_cents, currency, failure_reason, metadata, created_at, updated_at, idempotency_key) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        payment.order_id, payment.user_id, payment.provider, payment.provider_payment_id,
        payment.payment_method, payment.status, payment.amount_cents, payment.currency,
        payment.failure_reason, metadata, now, now, payment.idempotency_key,
    )
    assert result.lastrowid is not None
    return result.lastrowid


async def mark_succeeded(tx: Executor, payment_id: int, order_id: int,
                         provider_payment_id: str | None = None) -> bool:
    """pending → succeeded; False if it was settled already. IntegrityError when the order
    already has a succeeded payment."""
    result = await tx.execute(
        "UPDATE payments SET status = ?, success_order_id = ?, "
        "provider_payment_id = COALESCE(?, provider_payment_id), updated_at = ? WHERE id = ? AND status = ?",
        SUCCEEDED, order_id, provider_payment_id, utc_now_iso(), payment_id, PENDING,
    )
    return result.rowcount == 1


async def mark_failed(tx: Executor, payment_id: int, reason: str, provider_payment_id: str | None = None) -> bool:
    """pending → failed; False if it was settled already."""
    result = await tx.execute(
        "UPDATE payments SET status = ?, failure_reason = ?, provider_payment_id = COALESCE(?, provider_payment_id), "
        "updated_at = ? WHERE id = ? AND status = ?",
        FAILED, reason, provider_payment_id, utc_now_iso(), payment_id, PENDING,
    )
    return result.rowcount == 1


async def mark_duplicate(tx: Executor, payment_id: int, provider_payment_id: str | None) -> bool:
    """pending → refunded without ever being the order's payment: another charge paid it first."""
    now = utc_now_iso()
    result = await tx.execute(
        "UPDATE payments SET status = ?, refund_reason = 'duplicate_charge', refunded_at = ?, updated_at = ?, "
        "provider_payment_id = COALESCE(?, provider_payment_id) WHERE id = ? AND status = ?",
        REFUNDED, now, now, provider_payment_id, payment_id, PENDING,
    )
    return result.rowcount == 1


async def pending(db: Executor, limit: int) -> list[dict[str, Any]]:
    """Charges written ahead and not settled yet, oldest first."""
    return await db.fetch_all(f"SELECT {_COLUMNS} FROM payments WHERE status = ? ORDER BY id LIMIT ?",
                              PENDING, limit)


async def pending_for_order(db: Executor, order_id: int) -> list[dict[str, Any]]:
    return await db.fetch_all(f"SELECT {_COLUMNS} FROM payments WHERE order_id = ? AND status = ? ORDER BY id",
                              order_id, PENDING)


async def mark_refunded(tx: Executor, payment_id: int, reason: str) -> bool:
    """succeeded → refunded; False when the payment was not succeeded (already refunded, failed).

    `success_order_id` stays set: an order whose payment was refunded is never charged again.
    """
    now = utc_now_iso()
    result = await tx.execute(
        "UPDATE payments SET status = ?, refund_reason = ?, refunded_at = ?, updated_at = ? "
        "WHERE id = ? AND status = ?",
        REFUNDED, reason, now, now, payment_id, SUCCEEDED,
    )
    return result.rowcount == 1


async def set_refund_id(tx: Executor, payment_id: int, refund_id: str) -> None:
    await tx.execute("UPDATE payments SET provider_refund_id = ? WHERE id = ?", refund_id, payment_id)


async def succeeded_for_order(tx: Executor, order_id: int) -> list[dict[str, Any]]:
    return await tx.fetch_all(f"SELECT {_COLUMNS} FROM payments WHERE order_id = ? AND status = ? ORDER BY id",
                              order_id, SUCCEEDED)


async def lock_order(tx: Executor, order_id: int) -> bool:
    """Take the order's guard row (a write, so it locks on every dialect); True if it is cancelled.

    The write comes before any read in the transaction, so on MariaDB the read that follows
    sees whatever a concurrent charge or cancellation committed before we got the lock.
    """
    touch = "UPDATE order_guards SET touches = touches + 1 WHERE order_id = ?"
    # Update first: the usual case takes the exclusive lock at once instead of shared-then-exclusive.
    if (await tx.execute(touch, order_id)).rowcount == 0:
        inserted = await tx.execute("INSERT OR IGNORE INTO order_guards (order_id, touches) VALUES (?, 1)",
                                    order_id)
        if inserted.rowcount == 0:
            await tx.execute(touch, order_id)
    row = await tx.fetch_one("SELECT cancelled_at FROM order_guards WHERE order_id = ?", order_id)
    return row is not None and row["cancelled_at"] is not None


async def mark_cancelled(tx: Executor, order_id: int) -> None:
    await tx.execute("UPDATE order_guards SET cancelled_at = ? WHERE order_id = ? AND cancelled_at IS NULL",
                     utc_now_iso(), order_id)


async def is_cancelled(db: Executor, order_id: int) -> bool:
    row = await db.fetch_one("SELECT cancelled_at FROM order_guards WHERE order_id = ?", order_id)
    return row is not None and row["cancelled_at"] is not None


# -- Idempotency-Key of the charge route ---------------------------------------------------------


class KeyedRequest(msgspec.Struct, frozen=True, kw_only=True):
    user_id: int
    key_hash: str
    fingerprint: str
    order_id: int


async def keyed_request(db: Executor, user_id: int, key_hash: str) -> dict[str, Any] | None:
    return await db.fetch_one(
        "SELECT fingerprint, order_id, payment_id, status_code, response FROM charge_requests "
        "WHERE user_id = ? AND key_hash = ?", user_id, key_hash)


async def claim_key(tx: Executor, request: KeyedRequest, payment_id: int | None,
                    status_code: int | None = None, response: str | None = None) -> None:
    """Raises IntegrityError when another request claimed the key first."""
    await tx.execute(
        "INSERT INTO charge_requests (user_id, key_hash, fingerprint, order_id, payment_id, status_code, "
        "response, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        request.user_id, request.key_hash, request.fingerprint, request.order_id, payment_id, status_code,
        response, utc_now_iso())


async def save_answer(db: Executor, request: KeyedRequest, status_code: int, response: str) -> bool:
    """The first answer given under a key stays the answer; False if there is no claim of this
    request to answer (no claim yet, or the key belongs to another request)."""
    result = await db.execute(
        "UPDATE charge_requests SET status_code = ?, response = ? WHERE user_id = ? AND key_hash = ? "
        "AND fingerprint = ? AND status_code IS NULL", status_code, response, request.user_id, request.key_hash,
        request.fingerprint)
    return result.rowcount == 1


async def booked(db: Executor) -> list[BookedPayment]:
    """Every payment, as the audit against the providers' books compares them."""
    rows = await db.fetch_all("SELECT id, order_id, provider, status, amount_cents, provider_payment_id, "
                              "idempotency_key FROM payments ORDER BY id")
    return [BookedPayment(id=int(r["id"]), orderId=int(r["order_id"]), provider=r["provider"], status=r["status"],
                          amountCents=int(r["amount_cents"]), providerPaymentId=r["provider_payment_id"],
                          idempotencyKey=r["idempotency_key"]) for r in rows]
