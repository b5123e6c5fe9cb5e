"""Search rules without I/O: how events merge into an index entry, and what a valid query is.

Events arrive at least once and possibly out of order. Each merge function returns the entry
after the event, or None when the event changes nothing (stale, or about a deleted product).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

import msgspec

from microcommerce.contracts.inventory import StockChanged
from microcommerce.contracts.money import to_cents
from microcommerce.contracts.product import ProductData
from microcommerce.errors import BadRequest

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_PAGE = 1_000_000
MAX_ID = 2**63 - 1
MAX_PRICE_CENTS = 10**15
MAX_QUERY_LENGTH = 200


class IndexEntry(msgspec.Struct, kw_only=True, frozen=True):
    """One product in the index; a placeholder until its product data has arrived."""

    product_id: int
    name: str = ""
    description: str = ""
    category_id: int | None = None
    category_name: str = ""
    price_cents: int = 0
    currency: str = "USD"
    available_quantity: int = 0
    has_product: bool = False
    deleted: bool = False
    product_at: str | None = None  # occurredAt of the last product event applied
    product_version: int = 0  # the product's data version shown (0: none versioned yet)
    stock_at: str | None = None  # occurredAt of the last stock event applied
    stock_version: int = 0  # inventory's version of the stock levels shown (0: none versioned yet)
    version: int = 0

    @property
    def searchable(self) -> bool:
        return self.has_product and not self.deleted


def is_fresh(incoming_at: str, stored_at: str | None) -> bool:
    """An update applies unless it is older than what is stored (equal times apply: last wins)."""
    return stored_at is None or incoming_at >= stored_at


def is_newer(version: int, shown_version: int, occurred_at: str, shown_at: str | None) -> bool:
    """Should an event's data replace what is shown? The producer's version decides (timestamps
    tie within a millisecond); an event without one (version 0) falls back to its timestamp,
    and never replaces versioned data."""
    if version > 0:
        return version > shown_version
    return shown_version == 0 and is_fresh(occurred_at, shown_at)


def normalize_time(value: str) -> str:
    """The one timestamp format (UTC, milliseconds, Z) so times compare as text; kept if unparseable."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def apply_product(entry: IndexEntry | None, product: ProductData, occurred_at: str,
                  *, created: bool) -> IndexEntry | None:
    """PRODUCT_CREATED / PRODUCT_UPDATED. Creation's stockQuantity seeds stock no stock event set."""
    current = entry or IndexEntry(product_id=product.id)
    if current.deleted:
        return None
    merged = current
    if is_newer(product.version, current.product_version, occurred_at, current.product_at):
        merged = msgspec.structs.replace(
            merged, name=product.name, description=product.description or "",
            category_id=product.categoryId, category_name=product.categoryName,
            price_cents=to_cents(product.price), currency=product.currency,
            has_product=True, product_at=occurred_at, product_version=product.version,
        )
    if created and current.stock_at is None:
        merged = msgspec.structs.replace(merged, available_quantity=max(product.stockQuantity, 0))
    return merged if (entry is None or merged != current) else None


def apply_stock(entry: IndexEntry | None, stock: StockChanged, occurred_at: str) -> IndexEntry | None:
    """A STOCK_* event carries the levels after the change; before the product it makes a placeholder.

    Inventory's version of the stock row decides which levels are newer: timestamps can't (two
    changes in one millisecond carry the same occurredAt). Only events without a version (older
    producers) fall back to the timestamp, and never over versioned levels.
    """
    current = entry or IndexEntry(product_id=stock.productId)
    if current.deleted or not is_newer(stock.version, current.stock_version, occurred_at, current.stock_at):
        return None
    return msgspec.structs.replace(current, available_quantity=stock.availableQuantity,
                                   stock_at=occurred_at, stock_version=stock.version)


def apply_delete(entry: IndexEntry | None, product_id: int, occurred_at: str) -> IndexEntry | None:
    """Deletion is final: the row stays as a tombstone so late events cannot resurrect it."""
    current = entry or IndexEntry(product_id=product_id)
    if current.deleted:
        return None
    latest = max(occurred_at, current.product_at) if current.product_at else occurred_at
    return msgspec.structs.replace(current, deleted=True, product_at=latest)


# -- queries ---------------------------------------------------------------------------------

class SearchFilters(msgspec.Struct, kw_only=True, frozen=True):
    q: str | None = None  # lower-cased; matched as a substring of name or description
    category_id: int | None = None
    min_price_cents: int | None = None
    max_price_cents: int | None = None
    in_stock: bool | None = None
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


def parse_price(raw: str | None, name: str) -> int | None:
    """A decimal amount from a query parameter, in cents."""
    if raw is None or raw.strip() == "":
        return None
    try:
        amount = Decimal(raw.strip())
    except InvalidOperation:
        raise BadRequest(f"{name} must be a number") from None
    if not amount.is_finite() or amount < 0:
        raise BadRequest(f"{name} must be a non-negative number")
    if amount * 100 > MAX_PRICE_CENTS:  # checked first: huge exponents overflow the rounding
        raise BadRequest(f"{name} is too large")
    return to_cents(amount)


def parse_bool(raw: str | None, name: str) -> bool | None:
    if raw is None or raw.strip() == "":
        return None
    value = raw.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise BadRequest(f"{name} must be true or false")


def _in_range(value: int | None, name: str, low: int, high: int) -> None:
    if value is not None and not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}")


def search_filters(*, q: str | None = None, category_id: int | None = None,
                   min_price: str | None = None, max_price: str | None = None,
                   in_stock: str | None = None, page: int | None = None,
                   page_size: int | None = None) -> SearchFilters:
    """Validate a search request; every bad value is a 400 naming the parameter."""
    _in_range(page, "page", 1, MAX_PAGE)
    _in_range(page_size, "pageSize", 1, MAX_PAGE_SIZE)
    _in_range(category_id, "categoryId", 1, MAX_ID)
    text = (q or "").strip()
    if len(text) > MAX_QUERY_LENGTH:
        raise BadRequest(f"q must be at most {MAX_QUERY_LENGTH} characters")
    low = parse_price(min_price, "minPrice")
    high = parse_price(max_price, "maxPrice")
    if low is not None and high is not None and low > high:
        raise BadRequest("minPrice must not be greater than maxPrice")
    return SearchFilters(q=text.lower() or None, category_id=category_id, min_price_cents=low,
                         max_price_cents=high, in_stock=parse_bool(in_stock, "inStock"),
                         page=page or 1, page_size=page_size or DEFAULT_PAGE_SIZE)

