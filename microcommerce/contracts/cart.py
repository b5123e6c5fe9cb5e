"""Cart service contract: the cart the order service reads before ordering."""

from __future__ import annotations

import msgspec

from microcommerce.contracts.commands import Command


class CartLine(msgspec.Struct, kw_only=True, frozen=True):
    productId: int
    productName: str
    quantity: int
    unitPrice: float
    lineTotal: float
    # False once the product was deleted: the line can no longer be ordered (and is left out of totals).
    available: bool = True


class CartView(msgspec.Struct, kw_only=True, frozen=True):
    userId: int
    items: list[CartLine]
    totalQuantity: int
    totalAmount: float
    currency: str = "USD"
    id: int | None = None
    updatedAt: str | None = None


class GetCart(Command, frozen=True):
    """Answered with CartView; NotFound when the user's cart does not exist (yet)."""

    idempotent = True
    key_field = "user_id"
    reply_type = CartView
    user_id: int
