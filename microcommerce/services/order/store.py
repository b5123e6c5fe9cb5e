"""SQL of the order service. Status changes are conditional on the expected current status."""

from __future__ import annotations

from typing import Any

from microcommerce.contracts.events import utc_now_iso
from microcommerce.contracts.money import from_cents
from microcommerce.contracts.order import OrderLine, OrderSummary
from microcommerce.services.order.domain import (
    KEY_ABANDONED,
    KEY_DONE,
    KEY_RUNNING,
    PENDING,
    RESERVING,
    STATUSES,
    Line,
)
from microcommerce.services.order.messages import OrderView
from microcommerce.storage import Executor

_ORDER = "id, user_id, status, total_cents, currency, payment_id, cancel_reason, created_at, updated_at"
_ITEM = "order_id, product_id, product_name, quantity, unit_price_cents, line_total_cents"
_VISIBLE = ", ".join(f"'{status}'" for status in STATUSES)


def to_line(row: dict[str, Any]) -> OrderLine:
    return OrderLine(productId=int(row["product_id"]), productName=row["product_name"],
                     quantity=int(row["quantity"]), unitPrice=from_cents(int(row["unit_price_cents"])),
                     lineTotal=from_cents(int(row["line_total_cents"])))


def to_view(row: dict[str, Any], items: list[dict[str, Any]]) -> OrderView:
    lines = [to_line(item) for item in items]
    payment_id = row["payment_id"]
    return OrderView(
        id=int(row["id"]), userId=int(row["user_id"]), status=row["status"], items=lines,
        totalQuantity=sum(line.quantity for line in lines), totalAmount=from_cents(int(row["total_cents"])),
        currency=row["currency"], paymentId=int(payment_id) if payment_id is not None else None,
        cancelReason=row["cancel_reason"], createdAt=row["created_at"], updatedAt=row["updated_at"],
    )


def to_summary(row: dict[str, Any]) -> OrderSummary:
    return OrderSummary(id=int(row["id"]), userId=int(row["user_id"]), status=row["status"],
                        totalAmount=from_cents(int(row["total_cents"])), currency=row["currency"])


# -- orders ---------------------------------------------------------------------------------
async def insert_order(tx: Executor, user_id: int, lines: list[Line], currency: str, total_cents: int) -> int:
    """A new order in the internal "reserving" status, with its lines."""
    now = utc_now_iso()
    result = await tx.execute(
        "INSERT INTO orders (user_id, status, total_cents, currency, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        user_id, RESERVING, total_cents, currency, now, now,
    )
    assert result.lastrowid is not None
    order_id = result.lastrowid
    await tx.execute_many(
        f"INSERT INTO order_items ({_ITEM}) VALUES (?, ?, ?, ?, ?, ?)",
        [(order_id, line.product_id, line.product_name, line.quantity, line.unit_price_cents,
          line.total_cents) for line in lines],
    )
    return order_id


async def order(db: Executor, order_id: int) -> dict[str, Any] | None:
    return await db.fetch_one(f"SELECT {_ORDER} FROM orders WHERE id = ?", order_id)


async def items_of(db: Executor, order_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    if not order_ids:
        return {}
    marks = ", ".join("?" for _ in order_ids)
    rows = await db.fetch_all(f"SELECT {_ITEM} FROM order_items WHERE order_id IN ({marks}) ORDER BY id",
                              *order_ids)
    by_order: dict[int, list[dict[str, Any]]] = {order_id: [] for order_id in order_ids}
    for row in rows:
        by_order[int(row["order_id"])].append(row)
    return by_order


async def orders_of_user(db: Executor, user_id: int, limit: int, offset: int) -> list[dict[str, Any]]:
    return await db.fetch_all(
        f"SELECT {_ORDER} FROM orders WHERE user_id = ? AND status IN ({_VISIBLE}) "
        "ORDER BY id DESC LIMIT ? OFFSET ?",
        user_id, limit, offset,
    )


async def move(tx: Executor, order_id: int, from_status: str, to_status: str, *, reason: str | None = None,
               payment_id: int | None = None) -> bool:
    """Change status only from `from_status`; False when someone else changed it first."""
    result = await tx.execute(
        "UPDATE orders SET status = ?, cancel_reason = COALESCE(?, cancel_reason), "
        "payment_id = COALESCE(?, payment_id), updated_at = ? WHERE id = ? AND status = ?",
        to_status, reason, payment_id, utc_now_iso(), order_id, from_status,
    )
    return result.rowcount == 1


async def created_before(db: Executor, status: str, cutoff: str, limit: int) -> list[dict[str, Any]]:
    return await db.fetch_all(
        f"SELECT {_ORDER} FROM orders WHERE status = ? AND created_at < ? ORDER BY id LIMIT ?",
        status, cutoff, limit,
    )


async def open_orders_of(db: Executor, user_id: int) -> int:
    """Orders of the user that hold (or are taking) stock without being paid."""
    row = await db.fetch_one("SELECT COUNT(*) AS n FROM orders WHERE user_id = ? AND status IN (?, ?)",
                             user_id, PENDING, RESERVING)
    return int(row["n"]) if row else 0


# -- idempotency keys -------------------------------------------------------------------------
_KEY = "id, user_id, idem_key, fingerprint, state, order_id, status_code, response, created_at, updated_at"


async def idempotency_key(db: Executor, user_id: int, key: str) -> dict[str, Any] | None:
    return await db.fetch_one(f"SELECT {_KEY} FROM idempotency_keys WHERE user_id = ? AND idem_key = ?",
                              user_id, key)


async def claim_key(tx: Executor, user_id: int, key: str, fingerprint: str) -> bool:
    """Insert the key as running; False when it exists (the unique index decides between racers)."""
    now = utc_now_iso()
    result = await tx.execute(
        "INSERT OR IGNORE INTO idempotency_keys (user_id, idem_key, fingerprint, state, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        user_id, key, fingerprint, KEY_RUNNING, now, now)
    return result.rowcount == 1


async def take_over_key(tx: Executor, key_id: int, state: str, updated_at: str) -> bool:
    """Run an abandoned (or stale) key again; only one taker wins."""
    result = await tx.execute(
        "UPDATE idempotency_keys SET state = ?, updated_at = ? WHERE id = ? AND state = ? AND updated_at = ?",
        KEY_RUNNING, utc_now_iso(), key_id, state, updated_at)
    return result.rowcount == 1


async def attach_order(tx: Executor, key_id: int, order_id: int) -> None:
    await tx.execute("UPDATE idempotency_keys SET order_id = ? WHERE id = ?", order_id, key_id)


async def answer_key(tx: Executor, key_id: int, status_code: int, response: str) -> None:
    await tx.execute(
        "UPDATE idempotency_keys SET state = ?, status_code = ?, response = ?, updated_at = ? WHERE id = ?",
        KEY_DONE, status_code, response, utc_now_iso(), key_id)


async def abandon_key(tx: Executor, key_id: int) -> None:
    await tx.execute("UPDATE idempotency_keys SET state = ?, updated_at = ? WHERE id = ? AND state = ?",
                     KEY_ABANDONED, utc_now_iso(), key_id, KEY_RUNNING)


async def delete_key(tx: Executor, key_id: int) -> None:
    await tx.execute("DELETE FROM idempotency_keys WHERE id = ?", key_id)


async def forget_keys_before(tx: Executor, cutoff: str) -> int:
    result = await tx.execute("DELETE FROM idempotency_keys WHERE created_at < ?", cutoff)
    return result.rowcount


# -- users projection ---------------------------------------------------------------------------
async def upsert_user(tx: Executor, user_id: int, name: str, email: str, role: str, status: str) -> None:
    """Insert or refresh; a deleted user stays deleted even if an older event arrives late."""
    now = utc_now_iso()
    await tx.execute(
        "INSERT OR IGNORE INTO users (id, name, email, role, account_status, deleted, updated_at) "
        "VALUES (?, ?, ?, ?, ?, 0, ?)",
        user_id, name, email, role, status, now,
    )
    await tx.execute(
        "UPDATE users SET name = ?, email = ?, role = ?, account_status = ?, updated_at = ? WHERE id = ?",
        name, email, role, status, now, user_id,
    )


async def delete_user(tx: Executor, user_id: int, email: str) -> None:
    now = utc_now_iso()
    await tx.execute(
        "INSERT OR IGNORE INTO users (id, name, email, role, account_status, deleted, updated_at) "
        "VALUES (?, '', ?, 'user', 'deleted', 1, ?)",
        user_id, email, now,
    )
    await tx.execute("UPDATE users SET deleted = 1, updated_at = ? WHERE id = ?", now, user_id)

