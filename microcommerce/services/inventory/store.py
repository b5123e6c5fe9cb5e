"""SQL of the inventory service. Every stock change is a conditional update: check `rowcount`."""

from __future__ import annotations

from typing import Any

from microcommerce.contracts.events import utc_now_iso
from microcommerce.contracts.inventory import Reservation, StockLevel
from microcommerce.services.inventory.domain import RESERVED, StockLevels
from microcommerce.storage import Executor

_STOCK = "product_id, total_quantity, reserved_quantity, sold_quantity, owner_id, discontinued, version"
_RESERVATION = "id, order_id, product_id, quantity, status, held, expires_at"


def to_levels(row: dict[str, Any]) -> StockLevels:
    return StockLevels(int(row["total_quantity"]), int(row["reserved_quantity"]), int(row["sold_quantity"]))


def to_stock_level(row: dict[str, Any]) -> StockLevel:
    levels = to_levels(row)
    return StockLevel(productId=int(row["product_id"]), totalQuantity=levels.total,
                      reservedQuantity=levels.reserved, availableQuantity=levels.available,
                      soldQuantity=levels.sold, discontinued=bool(row["discontinued"]))


def to_reservation(row: dict[str, Any]) -> Reservation:
    return Reservation(id=int(row["id"]), orderId=int(row["order_id"]), productId=int(row["product_id"]),
                       quantity=int(row["quantity"]), status=row["status"], expiresAt=row["expires_at"])


# -- stock ---------------------------------------------------------------------------------
async def stock(db: Executor, product_id: int) -> dict[str, Any] | None:
    return await db.fetch_one(f"SELECT {_STOCK} FROM stock WHERE product_id = ?", product_id)


async def insert_stock(tx: Executor, product_id: int, quantity: int, owner_id: int | None) -> bool:
    """False when the product already has stock (a redelivered PRODUCT_CREATED changes nothing)."""
    result = await tx.execute(
        "INSERT OR IGNORE INTO stock (product_id, total_quantity, reserved_quantity, sold_quantity, "
        "owner_id, version, updated_at) VALUES (?, ?, 0, 0, ?, 1, ?)",
        product_id, quantity, owner_id, utc_now_iso(),
    )
    return result.rowcount == 1


async def take_available(tx: Executor, product_id: int, quantity: int) -> bool:
    """Reserve units only if that many are available and the product is still sold, so
    concurrent orders never oversell and none takes a deleted product."""
    result = await tx.execute(
        "UPDATE stock SET reserved_quantity = reserved_quantity + ?, version = version + 1, updated_at = ? "
        "WHERE product_id = ? AND total_quantity - reserved_quantity >= ? AND discontinued = 0",
        quantity, utc_now_iso(), product_id, quantity,
    )
    return result.rowcount == 1


async def give_back(tx: Executor, product_id: int, quantity: int) -> None:
    await tx.execute(
        "UPDATE stock SET reserved_quantity = reserved_quantity - ?, version = version + 1, updated_at = ? "
        "WHERE product_id = ? AND reserved_quantity >= ?",
        quantity, utc_now_iso(), product_id, quantity,
    )


async def sell_reserved(tx: Executor, product_id: int, quantity: int) -> None:
    await tx.execute(
        "UPDATE stock SET total_quantity = total_quantity - ?, reserved_quantity = reserved_quantity - ?, "
        "sold_quantity = sold_quantity + ?, version = version + 1, updated_at = ? "
        "WHERE product_id = ? AND reserved_quantity >= ?",
        quantity, quantity, quantity, utc_now_iso(), product_id, quantity,
    )


async def sell_available(tx: Executor, product_id: int, quantity: int) -> bool:
    """Sell units that are no longer reserved (their reservation lapsed), if still available."""
    result = await tx.execute(
        "UPDATE stock SET total_quantity = total_quantity - ?, sold_quantity = sold_quantity + ?, "
        "version = version + 1, updated_at = ? WHERE product_id = ? AND total_quantity - reserved_quantity >= ?",
        quantity, quantity, utc_now_iso(), product_id, quantity,
    )
    return result.rowcount == 1


async def set_total(tx: Executor, product_id: int, total: int) -> bool:
    """False when the new total would fall below what is reserved (checked in the same statement)."""
    result = await tx.execute(
        "UPDATE stock SET total_quantity = ?, version = version + 1, updated_at = ? "
        "WHERE product_id = ? AND reserved_quantity <= ?",
        total, utc_now_iso(), product_id, total,
    )
    return result.rowcount == 1


async def discontinue(tx: Executor, product_id: int) -> bool:
    """Stop new reservations of a deleted product; True only for the call that stopped them.

    A product deleted before its PRODUCT_CREATED reached us gets an empty, discontinued row, so
    that late event (INSERT OR IGNORE) can never bring its stock back.
    """
    now = utc_now_iso()
    created = await tx.execute(
        "INSERT OR IGNORE INTO stock (product_id, total_quantity, reserved_quantity, sold_quantity, "
        "owner_id, discontinued, version, updated_at) VALUES (?, 0, 0, 0, NULL, 1, 1, ?)",
        product_id, now,
    )
    if created.rowcount == 1:
        return True
    result = await tx.execute(
        "UPDATE stock SET discontinued = 1, version = version + 1, updated_at = ? "
        "WHERE product_id = ? AND discontinued = 0",
        now, product_id,
    )
    return result.rowcount == 1


# -- reservations ----------------------------------------------------------------------------
async def reservation(db: Executor, reservation_id: int) -> dict[str, Any] | None:
    return await db.fetch_one(f"SELECT {_RESERVATION} FROM reservations WHERE id = ?", reservation_id)


async def reservations_of_order(db: Executor, order_id: int) -> list[dict[str, Any]]:
    return await db.fetch_all(
        f"SELECT {_RESERVATION} FROM reservations WHERE order_id = ? ORDER BY product_id", order_id)


async def insert_reservation(tx: Executor, order_id: int, product_id: int, quantity: int,
                             expires_at: str) -> int:
    now = utc_now_iso()
    result = await tx.execute(
        "INSERT INTO reservations (order_id, product_id, quantity, status, held, expires_at, "
        "created_at, updated_at) VALUES (?, ?, ?, ?, 0, ?, ?, ?)",
        order_id, product_id, quantity, RESERVED, expires_at, now, now,
    )
    assert result.lastrowid is not None
    return result.lastrowid


async def move_reservation(tx: Executor, reservation_id: int, from_status: str, to_status: str, *,
                           only_unheld: bool = False) -> bool:
    """Change a reservation's status only from the expected one: whoever wins applies the stock change."""
    unheld = " AND held = 0" if only_unheld else ""
    result = await tx.execute(
        f"UPDATE reservations SET status = ?, updated_at = ? WHERE id = ? AND status = ?{unheld}",
        to_status, utc_now_iso(), reservation_id, from_status,
    )
    return result.rowcount == 1


async def hold_order(tx: Executor, order_id: int) -> None:
    """A paid order's reservations no longer expire: its units wait for shipping."""
    await tx.execute("UPDATE reservations SET held = 1, updated_at = ? WHERE order_id = ? AND status = ?",
                     utc_now_iso(), order_id, RESERVED)


async def expired(db: Executor, now: str, limit: int) -> list[dict[str, Any]]:
    return await db.fetch_all(
        f"SELECT {_RESERVATION} FROM reservations WHERE status = ? AND held = 0 AND expires_at <= ? "
        "ORDER BY expires_at, id LIMIT ?",
        RESERVED, now, limit,
    )
