"""SQL of the product service (its own database only)."""

from __future__ import annotations

from typing import Any

from microcommerce.contracts.events import utc_now_iso
from microcommerce.contracts.money import from_cents
from microcommerce.services.product.messages import (
    CategoryView,
    ImageView,
    ProductFilter,
    ProductView,
)
from microcommerce.storage import Executor
from microcommerce.storage.text_search import contains_any

_CATEGORY_COLUMNS = "id, name, slug, description, created_at, updated_at"
_PRODUCT_COLUMNS = (
    "p.id, p.category_id, c.name AS category_name, p.name, p.description, p.price_cents, p.currency, "
    "p.stock_quantity, p.created_by, p.created_at, p.updated_at"
)
_PRODUCT_FROM = "FROM products p LEFT JOIN categories c ON c.id = p.category_id"


# -- categories ----------------------------------------------------------------------------
def to_category(row: dict[str, Any]) -> CategoryView:
    return CategoryView(id=int(row["id"]), name=row["name"], slug=row["slug"],
                        description=row["description"], createdAt=row["created_at"],
                        updatedAt=row["updated_at"])


async def category_by_id(db: Executor, category_id: int) -> dict[str, Any] | None:
    return await db.fetch_one(f"SELECT {_CATEGORY_COLUMNS} FROM categories WHERE id = ?", category_id)


async def category_name_taken(db: Executor, name_key: str) -> bool:
    return await db.fetch_one("SELECT id FROM categories WHERE name_key = ?", name_key) is not None


async def slugs_starting_with(db: Executor, base: str) -> list[str]:
    # Slugs hold only [a-z0-9-], so `base` needs no LIKE escaping.
    rows = await db.fetch_all("SELECT slug FROM categories WHERE slug = ? OR slug LIKE ?", base, f"{base}-%")
    return [row["slug"] for row in rows]


async def insert_category(tx: Executor, name: str, name_key: str, slug: str, description: str) -> int:
    now = utc_now_iso()
    result = await tx.execute(
        "INSERT INTO categories (name, name_key, slug, description, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        name, name_key, slug, description, now, now,
    )
    assert result.lastrowid is not None
    return result.lastrowid


async def list_categories(db: Executor) -> list[dict[str, Any]]:
    return await db.fetch_all(f"SELECT {_CATEGORY_COLUMNS} FROM categories ORDER BY name, id")


async def count_categories(db: Executor) -> int:
    row = await db.fetch_one("SELECT COUNT(*) AS n FROM categories")
    return int(row["n"]) if row else 0


# -- products ------------------------------------------------------------------------------
def to_product(row: dict[str, Any], images: list[ImageView]) -> ProductView:
    created_by = row["created_by"]
    return ProductView(
        id=int(row["id"]), categoryId=int(row["category_id"]), categoryName=row["category_name"] or "",
        name=row["name"], description=row["description"], price=from_cents(int(row["price_cents"])),
        currency=row["currency"], stockQuantity=int(row["stock_quantity"]), images=images,
        createdBy=int(created_by) if created_by is not None else None,
        createdAt=row["created_at"], updatedAt=row["updated_at"],
    )


async def live_product(db: Executor, product_id: int) -> dict[str, Any] | None:
    """The product unless it is missing or soft-deleted."""
    return await db.fetch_one(
        f"SELECT {_PRODUCT_COLUMNS} {_PRODUCT_FROM} WHERE p.id = ? AND p.deleted_at IS NULL", product_id)


async def insert_product(tx: Executor, *, category_id: int, name: str, description: str, price_cents: int,
                         currency: str, stock_quantity: int, created_by: int | None) -> int:
    now = utc_now_iso()
    result = await tx.execute(
        "INSERT INTO products (category_id, name, description, price_cents, currency, stock_quantity, "
        "created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        category_id, name, description, price_cents, currency, stock_quantity, created_by, now, now,
    )
    assert result.lastrowid is not None
    return result.lastrowid


async def update_product(tx: Executor, product_id: int, fields: dict[str, Any]) -> None:
    """Set the given columns (names come from code, never from a client)."""
    sets = "".join(f"{column} = ?, " for column in fields)
    await tx.execute(f"UPDATE products SET {sets}updated_at = ? WHERE id = ?",
                     *fields.values(), utc_now_iso(), product_id)


async def next_data_version(tx: Executor, product_id: int) -> int:
    """Count one more announced change of the product's data; its version for the event."""
    await tx.execute("UPDATE products SET data_version = data_version + 1 WHERE id = ?", product_id)
    row = await tx.fetch_one("SELECT data_version FROM products WHERE id = ?", product_id)
    assert row is not None
    return int(row["data_version"])


async def project_stock(tx: Executor, product_id: int, total_quantity: int, version: int) -> bool:
    """Show inventory's units on hand, unless a newer version is shown already."""
    result = await tx.execute(
        "UPDATE products SET stock_quantity = ?, stock_version = ? WHERE id = ? AND stock_version < ?",
        total_quantity, version, product_id, version)
    return result.rowcount == 1


async def soft_delete(tx: Executor, product_id: int) -> bool:
    now = utc_now_iso()
    result = await tx.execute(
        "UPDATE products SET deleted_at = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL",
        now, now, product_id)
    return result.rowcount == 1


async def count_live_products(db: Executor) -> int:
    row = await db.fetch_one("SELECT COUNT(*) AS n FROM products WHERE deleted_at IS NULL")
    return int(row["n"]) if row else 0


def _filter_sql(f: ProductFilter) -> tuple[str, list[Any]]:
    clauses = ["p.deleted_at IS NULL"]
    params: list[Any] = []
    if f.category_id is not None:
        clauses.append("p.category_id = ?")
        params.append(f.category_id)
    if f.text:
        clause, patterns = contains_any(("p.name", "p.description"), f.text)
        clauses.append(clause)
        params += patterns
    if f.min_cents is not None:
        clauses.append("p.price_cents >= ?")
        params.append(f.min_cents)
    if f.max_cents is not None:
        clauses.append("p.price_cents <= ?")
        params.append(f.max_cents)
    return " AND ".join(clauses), params


async def search_products(db: Executor, f: ProductFilter, limit: int, offset: int
                          ) -> tuple[list[dict[str, Any]], int]:
    where, params = _filter_sql(f)
    counted = await db.fetch_one(f"SELECT COUNT(*) AS n FROM products p WHERE {where}", *params)
    rows = await db.fetch_all(
        f"SELECT {_PRODUCT_COLUMNS} {_PRODUCT_FROM} WHERE {where} ORDER BY p.id LIMIT ? OFFSET ?",
        *params, limit, offset)
    return rows, int(counted["n"]) if counted else 0


# -- images --------------------------------------------------------------------------------
async def replace_images(tx: Executor, product_id: int, images: list[ImageView]) -> None:
    await tx.execute("DELETE FROM product_images WHERE product_id = ?", product_id)
    await tx.execute_many(
        "INSERT INTO product_images (product_id, url, is_primary, sort_order) VALUES (?, ?, ?, ?)",
        [(product_id, image.url, int(image.isPrimary), image.sortOrder) for image in images],
    )


async def images_of(db: Executor, product_ids: list[int]) -> dict[int, list[ImageView]]:
    """Images per product, in display order."""
    found: dict[int, list[ImageView]] = {product_id: [] for product_id in product_ids}
    if not product_ids:
        return found
    marks = ", ".join("?" for _ in product_ids)
    rows = await db.fetch_all(
        f"SELECT product_id, url, is_primary, sort_order FROM product_images "
        f"WHERE product_id IN ({marks}) ORDER BY product_id, sort_order, id",
        *product_ids)
    for row in rows:
        found[int(row["product_id"])].append(
            ImageView(url=row["url"], isPrimary=bool(row["is_primary"]), sortOrder=int(row["sort_order"])))
    return found
