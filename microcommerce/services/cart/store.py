"""SQL of the cart service (its own database only).

Quantities change with single conditional statements (`quantity = quantity + ?`), never
read-then-write: a paid order's event and the user's own commands may run on different workers.
"""

from __future__ import annotations

from typing import Any

from microcommerce.contracts.events import utc_now_iso
from microcommerce.contracts.user import UserData
from microcommerce.services.cart.domain import MAX_LINE_QUANTITY, Line
from microcommerce.storage import Executor


# -- user projection -----------------------------------------------------------------------
async def user_is_deleted(db: Executor, user_id: int) -> bool:
    row = await db.fetch_one("SELECT deleted FROM cart_users WHERE id = ?", user_id)
    return row is not None and bool(row["deleted"])


async def upsert_user(tx: Executor, user: UserData) -> None:
    now = utc_now_iso()
    await tx.execute(
        "INSERT OR IGNORE INTO cart_users (id, name, email, role, account_status, deleted, updated_at) "
        "VALUES (?, ?, ?, ?, ?, 0, ?)",
        user.id, user.name, user.email, user.role, user.accountStatus, now)
    await tx.execute(
        "UPDATE cart_users SET name = ?, email = ?, role = ?, account_status = ?, updated_at = ? "
        "WHERE id = ? AND deleted = 0",
        user.name, user.email, user.role, user.accountStatus, now, user.id)


async def tombstone_user(tx: Executor, user_id: int, email: str) -> None:
    now = utc_now_iso()
    await tx.execute(
        "INSERT OR IGNORE INTO cart_users (id, name, email, role, account_status, deleted, updated_at) "
        "VALUES (?, '', ?, 'user', 'deleted', 1, ?)",
        user_id, email, now)
    await tx.execute("UPDATE cart_users SET deleted = 1, updated_at = ? WHERE id = ?", now, user_id)


# -- carts ---------------------------------------------------------------------------------
async def cart_of(db: Executor, user_id: int) -> dict[str, Any] | None:
    return await db.fetch_one("SELECT id, user_id, updated_at FROM carts WHERE user_id = ?", user_id)


async def ensure_cart(tx: Executor, user_id: int) -> None:
    now = utc_now_iso()
    await tx.execute("INSERT OR IGNORE INTO carts (user_id, created_at, updated_at) VALUES (?, ?, ?)",
                     user_id, now, now)


async def delete_cart(tx: Executor, user_id: int) -> None:
    cart = await cart_of(tx, user_id)
    if cart is None:
        return
    await tx.execute("DELETE FROM cart_items WHERE cart_id = ?", cart["id"])
    await tx.execute("DELETE FROM carts WHERE id = ?", cart["id"])


async def touch(tx: Executor, cart_id: int) -> None:
    await tx.execute("UPDATE carts SET updated_at = ? WHERE id = ?", utc_now_iso(), cart_id)


# -- lines ---------------------------------------------------------------------------------
def _to_line(row: dict[str, Any]) -> Line:
    return Line(product_id=int(row["product_id"]), product_name=row["product_name"],
                unit_price_cents=int(row["unit_price_cents"]), currency=row["currency"],
                quantity=int(row["quantity"]), available=bool(row["available"]))


async def lines_of(db: Executor, cart_id: int) -> list[Line]:
    rows = await db.fetch_all(
        "SELECT product_id, product_name, unit_price_cents, currency, quantity, available FROM cart_items "
        "WHERE cart_id = ? ORDER BY added_at, product_id", cart_id)
    return [_to_line(row) for row in rows]


async def quantity_of(db: Executor, cart_id: int, product_id: int) -> int:
    row = await db.fetch_one("SELECT quantity FROM cart_items WHERE cart_id = ? AND product_id = ?",
                             cart_id, product_id)
    return int(row["quantity"]) if row else 0


async def add_to_line(tx: Executor, cart_id: int, line: Line) -> bool:
    """Add `line.quantity` units: grow the existing line (refreshing its snapshot) or create it.

    False when the line exists and would pass the per-line maximum (nothing changed then).
    """
    now = utc_now_iso()
    grown = await tx.execute(
        "UPDATE cart_items SET quantity = quantity + ?, product_name = ?, unit_price_cents = ?, "
        "currency = ?, updated_at = ? WHERE cart_id = ? AND product_id = ? AND quantity + ? <= ?",
        line.quantity, line.product_name, line.unit_price_cents, line.currency, now, cart_id,
        line.product_id, line.quantity, MAX_LINE_QUANTITY)
    if grown.rowcount:
        return True
    created = await tx.execute(
        "INSERT OR IGNORE INTO cart_items (cart_id, product_id, product_name, unit_price_cents, currency, "
        "quantity, added_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        cart_id, line.product_id, line.product_name, line.unit_price_cents, line.currency, line.quantity,
        now, now)
    return created.rowcount == 1


async def set_quantity(tx: Executor, cart_id: int, product_id: int, quantity: int) -> bool:
    result = await tx.execute(
        "UPDATE cart_items SET quantity = ?, updated_at = ? WHERE cart_id = ? AND product_id = ?",
        quantity, utc_now_iso(), cart_id, product_id)
    return result.rowcount == 1


async def remove_line(tx: Executor, cart_id: int, product_id: int) -> bool:
    result = await tx.execute("DELETE FROM cart_items WHERE cart_id = ? AND product_id = ?",
                              cart_id, product_id)
    return result.rowcount == 1


async def clear(tx: Executor, cart_id: int) -> None:
    await tx.execute("DELETE FROM cart_items WHERE cart_id = ?", cart_id)


async def mark_unavailable(tx: Executor, product_id: int) -> None:
    """The product was deleted: flag its line in every cart (one statement, whatever the worker)."""
    await tx.execute("UPDATE cart_items SET available = 0, updated_at = ? WHERE product_id = ? AND available = 1",
                     utc_now_iso(), product_id)


async def take_bought(tx: Executor, cart_id: int, bought: dict[int, int]) -> None:
    """Remove units a paid order bought; lines that reach zero leave the cart."""
    now = utc_now_iso()
    for product_id, quantity in bought.items():
        await tx.execute(
            "UPDATE cart_items SET quantity = quantity - ?, updated_at = ? WHERE cart_id = ? AND product_id = ?",
            quantity, now, cart_id, product_id)
    await tx.execute("DELETE FROM cart_items WHERE cart_id = ? AND quantity <= 0", cart_id)
