"""SQL of the search service (its own database only)."""

from __future__ import annotations

from typing import Any

from microcommerce.contracts.events import utc_now_iso
from microcommerce.contracts.money import from_cents
from microcommerce.services.search.domain import IndexEntry, SearchFilters
from microcommerce.services.search.messages import SearchHit
from microcommerce.storage import Executor
from microcommerce.storage.text_search import contains_any

_COLUMNS = ("product_id, name, description, category_id, category_name, price_cents, currency, "
            "available_quantity, has_product, deleted, product_at, stock_at, stock_version, product_version, "
            "version")


class StaleIndexEntry(Exception):
    """Another worker changed the row since we read it; the event is retried (and re-read)."""


def to_entry(row: dict[str, Any]) -> IndexEntry:
    return IndexEntry(
        product_id=int(row["product_id"]), name=row["name"], description=row["description"],
        category_id=int(row["category_id"]) if row["category_id"] is not None else None,
        category_name=row["category_name"], price_cents=int(row["price_cents"]),
        currency=row["currency"], available_quantity=int(row["available_quantity"]),
        has_product=bool(row["has_product"]), deleted=bool(row["deleted"]),
        product_at=row["product_at"], stock_at=row["stock_at"], stock_version=int(row["stock_version"]),
        product_version=int(row["product_version"]), version=int(row["version"]),
    )


def to_hit(row: dict[str, Any]) -> SearchHit:
    available = int(row["available_quantity"])
    return SearchHit(
        id=int(row["product_id"]), name=row["name"], description=row["description"],
        categoryId=int(row["category_id"]) if row["category_id"] is not None else None,
        categoryName=row["category_name"], price=from_cents(int(row["price_cents"])),
        currency=row["currency"], availableQuantity=available, inStock=available > 0,
    )


async def get(db: Executor, product_id: int) -> IndexEntry | None:
    row = await db.fetch_one(f"SELECT {_COLUMNS} FROM search_products WHERE product_id = ?", product_id)
    return to_entry(row) if row else None


async def save(tx: Executor, entry: IndexEntry, previous: IndexEntry | None) -> None:
    """Insert or update `entry`, but only over the row version it was derived from."""
    values = (entry.name, entry.description, entry.category_id, entry.category_name,
              entry.price_cents, entry.currency, entry.available_quantity, int(entry.has_product),
              int(entry.deleted), entry.product_at, entry.stock_at, entry.stock_version, entry.product_version)
    if previous is None:
        result = await tx.execute(
            "INSERT OR IGNORE INTO search_products (name, description, category_id, category_name, "
            "price_cents, currency, available_quantity, has_product, deleted, product_at, stock_at, "
            "stock_version, product_version, version, updated_at, product_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
            *values, utc_now_iso(), entry.product_id,
        )
    else:
        result = await tx.execute(
            "UPDATE search_products SET name = ?, description = ?, category_id = ?, category_name = ?, "
            "price_cents = ?, currency = ?, available_quantity = ?, has_product = ?, deleted = ?, "
            "product_at = ?, stock_at = ?, stock_version = ?, product_version = ?, version = version + 1, "
            "updated_at = ? "
            "WHERE product_id = ? AND version = ?",
            *values, utc_now_iso(), entry.product_id, previous.version,
        )
    if result.rowcount != 1:
        raise StaleIndexEntry(f"search entry {entry.product_id} changed concurrently")


def _where(filters: SearchFilters) -> tuple[str, list[Any]]:
    clauses = ["has_product = 1", "deleted = 0"]
    params: list[Any] = []
    if filters.q:
        clause, patterns = contains_any(("name", "description"), filters.q)
        clauses.append(clause)
        params += patterns
    if filters.category_id is not None:
        clauses.append("category_id = ?")
        params.append(filters.category_id)
    if filters.min_price_cents is not None:
        clauses.append("price_cents >= ?")
        params.append(filters.min_price_cents)
    if filters.max_price_cents is not None:
        clauses.append("price_cents <= ?")
        params.append(filters.max_price_cents)
    if filters.in_stock is not None:
        clauses.append("available_quantity > 0" if filters.in_stock else "available_quantity <= 0")
    return " AND ".join(clauses), params


async def search(db: Executor, filters: SearchFilters) -> tuple[list[SearchHit], int]:
    """One page of visible products, id ascending, and the total that match."""
    where, params = _where(filters)
    rows = await db.fetch_all(
        f"SELECT {_COLUMNS} FROM search_products WHERE {where} ORDER BY product_id LIMIT ? OFFSET ?",
        *params, filters.page_size, filters.offset,
    )
    count = await db.fetch_one(f"SELECT COUNT(*) AS n FROM search_products WHERE {where}", *params)
    return [to_hit(row) for row in rows], int(count["n"]) if count else 0
