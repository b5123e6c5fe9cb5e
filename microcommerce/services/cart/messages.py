"""Commands the cart service's actors handle (all keyed by user: one cart, one worker).

Replies are the contract's `CartView`; `GetCart` itself lives in `contracts/cart.py` because the
order service asks it too.
"""

from __future__ import annotations

from microcommerce.contracts.cart import CartView
from microcommerce.contracts.commands import Command


class AddItem(Command, frozen=True):
    """Add `quantity` units (snapshotting the product's name and price); increases an existing line."""

    key_field = "user_id"
    reply_type = CartView
    user_id: int
    product_id: int
    quantity: int


class SetItemQuantity(Command, frozen=True):
    key_field = "user_id"
    reply_type = CartView
    user_id: int
    product_id: int
    quantity: int


class RemoveItem(Command, frozen=True):
    key_field = "user_id"
    reply_type = CartView
    user_id: int
    product_id: int


class ClearCart(Command, frozen=True):
    key_field = "user_id"
    reply_type = CartView
    user_id: int
