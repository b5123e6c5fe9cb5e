"""Product service contract: `product-events` and the product lookup other services request."""

from __future__ import annotations

import msgspec

from microcommerce.contracts.commands import Command
from microcommerce.contracts.events import PRODUCT_EVENTS, register_event

PRODUCT_CREATED = "PRODUCT_CREATED"
PRODUCT_UPDATED = "PRODUCT_UPDATED"
PRODUCT_DELETED = "PRODUCT_DELETED"


class ProductData(msgspec.Struct, kw_only=True, frozen=True):
    """PRODUCT_CREATED / PRODUCT_UPDATED. `stockQuantity` is the initial stock on creation.
    `version` grows with every event of the product (1 at creation): a projection keeps the data
    of the highest version it has seen (0: a producer that did not send one)."""

    id: int
    categoryId: int
    name: str
    description: str = ""
    price: float
    currency: str = "USD"
    stockQuantity: int = 0
    images: list[str] = []
    createdBy: int | None = None
    categoryName: str = ""
    version: int = 0


class ProductDeleted(msgspec.Struct, kw_only=True, frozen=True):
    id: int


class ProductInfo(msgspec.Struct, kw_only=True, frozen=True):
    id: int
    name: str
    price: float
    currency: str
    categoryId: int


class GetProduct(Command, frozen=True):
    """Answered with ProductInfo; NotFound when missing or deleted."""

    idempotent = True
    key_field = "id"
    reply_type = ProductInfo
    id: int


register_event(PRODUCT_CREATED, PRODUCT_EVENTS, ProductData)
register_event(PRODUCT_UPDATED, PRODUCT_EVENTS, ProductData)
register_event(PRODUCT_DELETED, PRODUCT_EVENTS, ProductDeleted)
