"""SQL of the payment service (its own database only). Amounts are integer cents."""

from __future__ import annotations

from typing import Any

import msgspec

from microcommerce.contracts.events import utc_now_iso
from microcommerce.contracts.money import from_cents
from microcommerce.contracts.payment import PaymentData, PaymentView
from microcommerce.services.payment.domain import REFUNDED, SUCCEEDED
from microcommerce.storage import Executor

_COLUMNS = ("id, order_id, user_id, provider, provider_payment_id, payment_method, status, amount_cents, "
            "currency, failure_reason, refund_reason, metadata, created_at, updated_at, refunded_at")


class NewPayment(msgspec.Struct, frozen=True, kw_only=True):
    order_id: int
    user_id: int
    provider: str
    provider_payment_id: str
    payment_method: str | None
    status: str
    amount_cents: int
    currency: str
    failure_reason: str | None
    metadata: dict[str, Any] | None


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
        "amount_cents, currency, failure_reason, metadata, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        payment.order_id, payment.user_id, payment.provider, payment.provider_payment_id,
        payment.payment_method, payment.status, payment.amount_cents, payment.currency,
        payment.failure_reason, metadata, now, now,
    )
    assert result.lastrowid is not None
    return result.lastrowid


async def mark_succeeded(tx: Executor, payment_id: int, order_id: int) -> None:
    """Raises IntegrityError when the order already has a succeeded payment."""
    await tx.execute(
        "UPDATE payments SET status = ?, success_order_id = ?, updated_at = ? WHERE id = ?",
        SUCCEEDED, order_id, utc_now_iso(), payment_id,
    )


async def mark_failed(tx: Executor, payment_id: int, reason: str) -> None:
    await tx.execute("UPDATE payments SET status = 'failed', failure_reason = ?, updated_at = ? WHERE id = ?",
                     reason, utc_now_iso(), payment_id)


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
