"""Commands the search service's actors handle, and the views they answer with."""

from __future__ import annotations

import msgspec

from microcommerce.contracts.commands import Command
from microcommerce.services.search.domain import SearchFilters


class SearchHit(msgspec.Struct, kw_only=True):
    id: int
    name: str
    description: str
    categoryId: int | None
    categoryName: str
    price: float
    currency: str
    availableQuantity: int
    inStock: bool


class SearchPage(msgspec.Struct, kw_only=True):
    items: list[SearchHit]
    total: int
    page: int
    pageSize: int


class SearchProducts(Command, frozen=True):
    """Read-only: any worker may answer (no key)."""

    filters: SearchFilters


class GetIndexEntry(Command, frozen=True):
    """The raw index row of one product, placeholders and tombstones included (tests, chaos checks)."""

    key_field = "product_id"
    product_id: int
