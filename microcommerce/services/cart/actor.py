"""Cart handlers: the user projection and carts (from user-events), cart commands, paid orders."""

from __future__ import annotations

from typing import Any

from microcommerce.actors.service import ServiceActor, handles, on_event
from microcommerce.contracts import order as order_contract
from microcommerce.contracts import product as product_contract
from microcommerce.contracts import user as user_contract
from microcommerce.contracts.cart import CartView, GetCart
from microcommerce.contracts.events import EventEnvelope
from microcommerce.contracts.product import GetProduct, ProductInfo
from microcommerce.errors import Conflict, NotFound
from microcommerce.services.cart import domain, store
from microcommerce.services.cart.messages import AddItem, ClearCart, RemoveItem, SetItemQuantity
from microcommerce.storage import Executor


class CartActor(ServiceActor):
    # -- events ----------------------------------------------------------------------------
    @on_event(user_contract.USER_CREATED, user_contract.USER_UPDATED)
    async def user_seen(self, tx: Executor, data: user_contract.UserData, envelope: EventEnvelope) -> None:
        """Project the user and make sure their cart exists (an UPDATED also heals a lost CREATED)."""
        if await store.user_is_deleted(tx, data.id):
            return  # a late event for a deleted user must not bring the cart back
        await store.upsert_user(tx, data)
        await store.ensure_cart(tx, data.id)

    @on_event(user_contract.USER_DELETED)
    async def user_deleted(self, tx: Executor, data: user_contract.UserDeleted, envelope: EventEnvelope) -> None:
        await store.tombstone_user(tx, data.id, data.email)
        await store.delete_cart(tx, data.id)

    @on_event(order_contract.ORDER_PAID)
    async def order_paid(self, tx: Executor, data: order_contract.OrderData, envelope: EventEnvelope) -> None:
        """What a paid order bought leaves the cart (whatever the user added since stays)."""
        cart = await store.cart_of(tx, data.userId)
        if cart is None:
            return
        await store.take_bought(tx, cart["id"], domain.bought_quantities(data.items))
        await store.touch(tx, cart["id"])

    @on_event(product_contract.PRODUCT_DELETED)
    async def product_deleted(self, tx: Executor, data: product_contract.ProductDeleted,
                              envelope: EventEnvelope) -> None:
        """Lines of a deleted product stay, flagged unavailable: the customer sees why they can't order it."""
        await store.mark_unavailable(tx, data.id)

    # -- commands --------------------------------------------------------------------------
    @handles(GetCart)
    async def get_cart(self, cmd: GetCart) -> CartView:
        return await self._view(self.db, await self._cart(self.db, cmd.user_id))

    @handles(AddItem)
    async def add_item(self, cmd: AddItem) -> CartView:
        await self._cart(self.db, cmd.user_id)  # no cart: say so before asking the product service
        # Outside any transaction: NotFound, 503 and 504 from the product service reach the caller.
        product: ProductInfo = await self.request("product", GetProduct(id=cmd.product_id))
        line = domain.Line(product_id=product.id, product_name=product.name,
                           unit_price_cents=domain.price_cents(product.price), currency=product.currency,
                           quantity=cmd.quantity)
        async with self.db.transaction() as tx:
            cart = await self._cart(tx, cmd.user_id)
            domain.check_currency(await store.lines_of(tx, cart["id"]), line.product_id, line.currency)
            domain.check_line_quantity(await store.quantity_of(tx, cart["id"], line.product_id), line.quantity)
            if not await store.add_to_line(tx, cart["id"], line):
                raise Conflict("The cart changed meanwhile, try again")
            await store.touch(tx, cart["id"])
            return await self._view(tx, cart)

    @handles(SetItemQuantity)
    async def set_item_quantity(self, cmd: SetItemQuantity) -> CartView:
        async with self.db.transaction() as tx:
            cart = await self._cart(tx, cmd.user_id)
            if not await store.set_quantity(tx, cart["id"], cmd.product_id, cmd.quantity):
                raise _not_in_cart(cmd.product_id)
            await store.touch(tx, cart["id"])
            return await self._view(tx, cart)

    @handles(RemoveItem)
    async def remove_item(self, cmd: RemoveItem) -> CartView:
        async with self.db.transaction() as tx:
            cart = await self._cart(tx, cmd.user_id)
            if not await store.remove_line(tx, cart["id"], cmd.product_id):
                raise _not_in_cart(cmd.product_id)
            await store.touch(tx, cart["id"])
            return await self._view(tx, cart)

    @handles(ClearCart)
    async def clear_cart(self, cmd: ClearCart) -> CartView:
        async with self.db.transaction() as tx:
            cart = await self._cart(tx, cmd.user_id)
            await store.clear(tx, cart["id"])
            await store.touch(tx, cart["id"])
            return await self._view(tx, cart)

    # -- helpers ---------------------------------------------------------------------------
    @staticmethod
    async def _cart(db: Executor, user_id: int) -> dict[str, Any]:
        cart = await store.cart_of(db, user_id)
        if cart is None:
            raise NotFound(f"No cart for user {user_id}: a cart is created once the account is registered")
        return cart

    @staticmethod
    async def _view(db: Executor, cart: dict[str, Any]) -> CartView:
        fresh = await store.cart_of(db, int(cart["user_id"])) or cart  # updated_at after a touch
        lines = await store.lines_of(db, int(cart["id"]))
        return domain.cart_view(int(cart["id"]), int(cart["user_id"]), fresh["updated_at"], lines)


def _not_in_cart(product_id: int) -> NotFound:
    return NotFound(f"Product {product_id} is not in the cart")
