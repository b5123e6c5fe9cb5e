"""Commands the product service's actors handle, and the views they answer with.

Commands carry already-validated values (money in cents, images normalized); routes do the
HTTP-side checks, `domain` holds the rules both use.
"""

from __future__ import annotations

import msgspec

from microcommerce.contracts.commands import Command


class CategoryView(msgspec.Struct, kw_only=True):
    id: int
    name: str
    slug: str
    description: str
    createdAt: str
    updatedAt: str


class ImageView(msgspec.Struct, kw_only=True, frozen=True):
    url: str
    isPrimary: bool
    sortOrder: int


class ProductView(msgspec.Struct, kw_only=True):
    id: int
    categoryId: int
    categoryName: str
    name: str
    description: str
    price: float
    currency: str
    stockQuantity: int
    images: list[ImageView]
    createdBy: int | None
    createdAt: str
    updatedAt: str


class ProductPage(msgspec.Struct, kw_only=True):
    items: list[ProductView]
    total: int
    page: int
    pageSize: int


class CreateCategory(Command, frozen=True):
    # Keyed by the slug the name derives to: same-name (and same-slug) requests share a worker.
    key_field = "slug"
    name: str
    slug: str
    description: str = ""


class ListCategories(Command, frozen=True):
    pass


class CreateProduct(Command, frozen=True):
    category_id: int
    name: str
    description: str
    price_cents: int
    currency: str
    stock_quantity: int
    images: list[ImageView]
    created_by: int | None


class UpdateProduct(Command, frozen=True):
    """Partial update: None means "leave as is"; `images` replaces the whole list when given."""

    key_field = "id"
    id: int
    actor_id: int
    actor_role: str
    category_id: int | None = None
    name: str | None = None
    description: str | None = None
    price_cents: int | None = None
    currency: str | None = None
    stock_quantity: int | None = None
    images: list[ImageView] | None = None


class DeleteProduct(Command, frozen=True):
    key_field = "id"
    id: int
    actor_id: int
    actor_role: str


class GetProductView(Command, frozen=True):
    key_field = "id"
    id: int


class ProductFilter(msgspec.Struct, kw_only=True, frozen=True):
    category_id: int | None = None
    text: str | None = None
    min_cents: int | None = None
    max_cents: int | None = None


class ListProducts(Command, frozen=True):
    filter: ProductFilter
    page: int = 1
    page_size: int = 20


class CatalogSize(Command, frozen=True):
    """How many categories and live products exist (the demo catalog seeds only an empty one)."""


class CatalogCounts(msgspec.Struct, kw_only=True):
    categories: int
    products: int
