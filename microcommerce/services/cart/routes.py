"""HTTP routes of the cart service. Only shoppers (role `user`) change a cart; anyone reads their own."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from microcommerce.contracts.cart import CartView, GetCart
from microcommerce.http.app import ask
from microcommerce.http.auth import authenticate, require_owner_or_admin, require_role
from microcommerce.http.body import int_param, json_response, read_json
from microcommerce.http.openapi import Error, api
from microcommerce.services.cart.domain import MAX_LINE_QUANTITY
from microcommerce.services.cart.messages import AddItem, ClearCart, RemoveItem, SetItemQuantity

Quantity = Annotated[int, msgspec.Meta(ge=1, le=MAX_LINE_QUANTITY)]
SHOPPER = "user"


class AddItemBody(msgspec.Struct):
    productId: Annotated[int, msgspec.Meta(gt=0)]
    quantity: Quantity = 1


class QuantityBody(msgspec.Struct):
    quantity: Quantity


def _product_id(request: web.Request) -> int:
    return int_param(request.match_info["productId"], "productId")


@api(summary="The caller's cart", auth=True, responses={200: CartView, 404: Error})
async def my_cart(request: web.Request) -> web.Response:
    principal = authenticate(request)
    return json_response(await ask(request, GetCart(user_id=principal.id)))


@api(summary="Add units of a product to the caller's cart", auth=SHOPPER, body=AddItemBody,
     responses={201: CartView, 404: Error, 409: Error})
async def add_item(request: web.Request) -> web.Response:
    principal = require_role(request, SHOPPER)
    body = await read_json(request, AddItemBody)
    cart = await ask(request, AddItem(user_id=principal.id, product_id=body.productId, quantity=body.quantity))
    return json_response(cart, 201)


@api(summary="Set the quantity of a cart line", auth=SHOPPER, body=QuantityBody,
     responses={200: CartView, 409: Error})
async def set_item_quantity(request: web.Request) -> web.Response:
    principal = require_role(request, SHOPPER)
    product_id = _product_id(request)
    body = await read_json(request, QuantityBody)
    cart = await ask(request, SetItemQuantity(user_id=principal.id, product_id=product_id,
                                              quantity=body.quantity))
    return json_response(cart)


@api(summary="Remove a line from the caller's cart", auth=SHOPPER, responses={200: CartView})
async def remove_item(request: web.Request) -> web.Response:
    principal = require_role(request, SHOPPER)
    cart = await ask(request, RemoveItem(user_id=principal.id, product_id=_product_id(request)))
    return json_response(cart)


@api(summary="Empty the caller's cart", auth=SHOPPER, responses={200: CartView, 404: Error})
async def clear_cart(request: web.Request) -> web.Response:
    principal = require_role(request, SHOPPER)
    return json_response(await ask(request, ClearCart(user_id=principal.id)))


@api(summary="A user's cart (the owner or an admin)", auth=True, responses={200: CartView, 403: Error})
async def user_cart(request: web.Request) -> web.Response:
    user_id = int_param(request.match_info["userId"], "userId")
    require_owner_or_admin(request, user_id)
    return json_response(await ask(request, GetCart(user_id=user_id)))


def setup_routes(app: web.Application) -> None:
    # /carts/me before /carts/{userId}: aiohttp matches in registration order.
    app.router.add_get("/carts/me", my_cart)
    app.router.add_delete("/carts/me", clear_cart)
    app.router.add_post("/carts/me/items", add_item)
    app.router.add_patch("/carts/me/items/{productId}", set_item_quantity)
    app.router.add_delete("/carts/me/items/{productId}", remove_item)
    app.router.add_get("/carts/{userId}", user_cart)
