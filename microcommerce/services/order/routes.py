"""HTTP routes of the order service: the caller's orders, admin status changes, internal lookups."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from microcommerce.contracts.order import MarkOrderPaid, OrderSummary
from microcommerce.errors import Forbidden
from microcommerce.http.app import ask
from microcommerce.http.auth import authenticate, require_owner_or_admin, require_role
from microcommerce.http.body import (
    MAX_OFFSET,
    MAX_QUANTITY,
    int_param,
    json_response,
    query_int,
    read_json,
)
from microcommerce.http.idempotency import idempotency_key
from microcommerce.http.openapi import Error, api
from microcommerce.services.order import domain
from microcommerce.services.order.messages import (
    CancelOrder,
    ChangeOrderStatus,
    CheckoutCart,
    GetOrder,
    ListUserOrders,
    OrderExists,
    OrderView,
    PlaceOrder,
)

PositiveInt = Annotated[int, msgspec.Meta(gt=0)]


class PlaceOrderBody(msgspec.Struct):
    productId: PositiveInt
    quantity: Annotated[int, msgspec.Meta(ge=1, le=MAX_QUANTITY)] | None = None


class StatusBody(msgspec.Struct):
    status: Annotated[str, msgspec.Meta(max_length=40)]


class MarkPaidBody(msgspec.Struct):
    paymentId: PositiveInt


class PageQuery(msgspec.Struct):
    limit: int | None = None
    offset: int | None = None


class OrderList(msgspec.Struct):
    orders: list[OrderView]
    limit: int
    offset: int


class Exists(msgspec.Struct):
    exists: bool


def _order_id(request: web.Request) -> int:
    return int_param(request.match_info["orderId"], "orderId")


@api(summary="Order one product from the caller's cart", auth="user", body=PlaceOrderBody,
     responses={201: OrderView, 404: Error, 409: Error})
async def place_order(request: web.Request) -> web.Response:
    principal = require_role(request, "user")
    key = await idempotency_key(request)
    body = await read_json(request, PlaceOrderBody)
    order = await ask(request, PlaceOrder(user_id=principal.id, product_id=body.productId,
                                          quantity=body.quantity, idempotency=key))
    return json_response(order, 201)


@api(summary="Order the whole cart", auth="user", responses={201: OrderView, 400: Error, 404: Error, 409: Error})
async def checkout(request: web.Request) -> web.Response:
    principal = require_role(request, "user")
    key = await idempotency_key(request)
    return json_response(await ask(request, CheckoutCart(user_id=principal.id, idempotency=key)), 201)


async def _list(request: web.Request, user_id: int) -> web.Response:
    limit = query_int(request, "limit", 50, high=200)
    offset = query_int(request, "offset", 0, low=0, high=MAX_OFFSET)
    orders = await ask(request, ListUserOrders(user_id=user_id, limit=limit, offset=offset))
    return json_response({"orders": orders, "limit": limit, "offset": offset})


@api(summary="The caller's orders, newest first", auth=True, query=PageQuery, responses={200: OrderList})
async def my_orders(request: web.Request) -> web.Response:
    return await _list(request, authenticate(request).id)


@api(summary="A user's orders (the owner or an admin)", auth=True, query=PageQuery,
     responses={200: OrderList, 403: Error})
async def user_orders(request: web.Request) -> web.Response:
    user_id = int_param(request.match_info["userId"], "userId")
    require_owner_or_admin(request, user_id)
    return await _list(request, user_id)


@api(summary="One order (the owner or an admin)", auth=True, responses={200: OrderView, 403: Error})
async def get_order(request: web.Request) -> web.Response:
    principal = authenticate(request)
    order: OrderView = await ask(request, GetOrder(order_id=_order_id(request)))
    if order.userId != principal.id and not principal.is_admin():
        raise Forbidden("Only the owner or an admin may see this order")
    return json_response(order)


@api(summary="Cancel an order (the owner or an admin)", auth=True,
     responses={200: OrderView, 403: Error, 409: Error})
async def cancel_order(request: web.Request) -> web.Response:
    principal = authenticate(request)
    order = await ask(request, CancelOrder(order_id=_order_id(request), actor_id=principal.id,
                                           actor_role=principal.role))
    return json_response(order)


@api(summary="Move an order to another status", auth="admin", body=StatusBody,
     responses={200: OrderView, 409: Error})
async def change_status(request: web.Request) -> web.Response:
    principal = require_role(request, "admin")
    order_id = _order_id(request)
    body = await read_json(request, StatusBody)
    order = await ask(request, ChangeOrderStatus(order_id=order_id, status=domain.check_status(body.status),
                                                 actor_id=principal.id, actor_role=principal.role))
    return json_response(order)


@api(summary="Whether an order exists", internal=True, responses={200: Exists})
async def order_exists(request: web.Request) -> web.Response:
    return json_response({"exists": await ask(request, OrderExists(order_id=_order_id(request)))})


@api(summary="Mark an order paid", internal=True, body=MarkPaidBody,
     responses={200: OrderSummary, 409: Error})
async def mark_paid(request: web.Request) -> web.Response:
    order_id = _order_id(request)
    body = await read_json(request, MarkPaidBody)
    return json_response(await ask(request, MarkOrderPaid(order_id=order_id, payment_id=body.paymentId)))


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/orders/me", place_order)
    app.router.add_post("/orders/me/checkout", checkout)
    app.router.add_get("/orders/me", my_orders)
    app.router.add_get("/orders/user/{userId}", user_orders)
    app.router.add_get("/orders/{orderId}", get_order)
    app.router.add_patch("/orders/{orderId}/cancel", cancel_order)
    app.router.add_patch("/orders/{orderId}/status", change_status)
    app.router.add_get("/internal/orders/{orderId}/exists", order_exists)
    app.router.add_post("/internal/orders/{orderId}/mark-paid", mark_paid)
