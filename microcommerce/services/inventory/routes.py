"""HTTP routes of the inventory service: public stock levels, admin adjustments, internal saga calls."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from microcommerce.contracts.inventory import (
    ConfirmOrderStock,
    GetStock,
    ReleaseOrderStock,
    Reservation,
    ReserveLine,
    ReserveStock,
    StockLevel,
)
from microcommerce.http.app import ask
from microcommerce.http.auth import require_role
from microcommerce.http.body import MAX_QUANTITY, int_param, json_response, read_json
from microcommerce.http.openapi import Error, api
from microcommerce.services.inventory.messages import ReleaseExpired, ReleaseReservation, SetStock

PositiveInt = Annotated[int, msgspec.Meta(gt=0)]


class StockBody(msgspec.Struct):
    totalQuantity: Annotated[int, msgspec.Meta(ge=0, le=MAX_QUANTITY)]


class ReservationBody(msgspec.Struct):
    orderId: PositiveInt
    productId: PositiveInt
    quantity: Annotated[int, msgspec.Meta(gt=0, le=MAX_QUANTITY)]
    expiresAt: Annotated[str, msgspec.Meta(min_length=10, max_length=40)] | None = None


class OrderReservations(msgspec.Struct):
    orderId: int
    reservations: list[Reservation]


class Released(msgspec.Struct):
    released: int


@api(summary="Stock levels of a product", responses={200: StockLevel})
async def get_stock(request: web.Request) -> web.Response:
    product_id = int_param(request.match_info["productId"], "productId")
    return json_response(await ask(request, GetStock(product_id=product_id)))


@api(summary="Set a product's total stock", auth=("admin", "supplier"), body=StockBody,
     responses={200: StockLevel, 409: Error})
async def set_stock(request: web.Request) -> web.Response:
    principal = require_role(request, "admin", "supplier")
    product_id = int_param(request.match_info["productId"], "productId")
    body = await read_json(request, StockBody)
    level = await ask(request, SetStock(product_id=product_id, total_quantity=body.totalQuantity,
                                        actor_id=principal.id, actor_role=principal.role))
    return json_response(level)


@api(summary="Reserve stock for an order line", internal=True, body=ReservationBody,
     responses={201: Reservation, 404: Error, 409: Error})
async def reserve(request: web.Request) -> web.Response:
    body = await read_json(request, ReservationBody)
    reservations: list[Reservation] = await ask(request, ReserveStock(
        order_id=body.orderId, lines=[ReserveLine(body.productId, body.quantity)], expires_at=body.expiresAt))
    return json_response(reservations[0], 201)


@api(summary="Release one reservation", internal=True, responses={200: Reservation})
async def release_reservation(request: web.Request) -> web.Response:
    reservation_id = int_param(request.match_info["id"], "id")
    return json_response(await ask(request, ReleaseReservation(reservation_id=reservation_id)))


@api(summary="Release an order's reservations", internal=True, responses={200: OrderReservations})
async def release_order(request: web.Request) -> web.Response:
    order_id = int_param(request.match_info["orderId"], "orderId")
    reservations = await ask(request, ReleaseOrderStock(order_id=order_id, reason="cancelled"))
    return json_response(OrderReservations(order_id, reservations))


@api(summary="Confirm an order's reservations (stock sold)", internal=True,
     responses={200: OrderReservations, 409: Error})
async def confirm_order(request: web.Request) -> web.Response:
    order_id = int_param(request.match_info["orderId"], "orderId")
    reservations = await ask(request, ConfirmOrderStock(order_id=order_id))
    return json_response(OrderReservations(order_id, reservations))


@api(summary="Release every expired reservation", internal=True, responses={200: Released})
async def release_expired(request: web.Request) -> web.Response:
    return json_response({"released": await ask(request, ReleaseExpired())})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/inventory/{productId}", get_stock)
    app.router.add_put("/inventory/{productId}/stock", set_stock)
    app.router.add_post("/internal/reservations", reserve)
    app.router.add_post("/internal/reservations/release-expired", release_expired)
    app.router.add_post("/internal/reservations/{id}/release", release_reservation)
    app.router.add_post("/internal/orders/{orderId}/release", release_order)
    app.router.add_post("/internal/orders/{orderId}/confirm", confirm_order)
