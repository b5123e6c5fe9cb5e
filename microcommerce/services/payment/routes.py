"""HTTP routes of the payment service."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from aiohttp import web

from microcommerce.http.app import ask
from microcommerce.http.auth import authenticate, require_owner_or_admin, require_role
from microcommerce.http.body import MAX_OFFSET, decode_as, int_param, json_response, query_int
from microcommerce.http.openapi import Error, api
from microcommerce.services.payment import domain, idempotency
from microcommerce.services.payment.messages import (
    ChargeAnswer,
    ChargeOrder,
    GetPayment,
    ListOrderPayments,
    ListUserPayments,
    PaymentView,
    ReconcilePayments,
    ReconcileReport,
    RefundPayment,
)


class ChargeBody(msgspec.Struct):
    """Unknown fields (an `amount`, say) are ignored: the amount always comes from the order."""

    provider: Annotated[str, msgspec.Meta(max_length=20)] | None = None
    paymentMethod: Annotated[str, msgspec.Meta(min_length=1, max_length=50)] | None = None
    paymentToken: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None
    metadata: dict[str, Any] | None = None


class RefundBody(msgspec.Struct):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] = "requested_by_admin"


class PageQuery(msgspec.Struct):
    limit: int | None = None
    offset: int | None = None


class PaymentList(msgspec.Struct):
    payments: list[PaymentView]
    limit: int
    offset: int


class OrderPayments(msgspec.Struct):
    orderId: int
    payments: list[PaymentView]


class DeclinedPayment(PaymentView, frozen=True):
    """A declined charge: the failed payment, and why in words."""

    message: str


async def _optional_body(request: web.Request, kind: type[Any]) -> Any:
    """Every field of these bodies is optional, so an empty body means all defaults."""
    raw = await request.read()
    return decode_as(raw, kind) if raw.strip() else kind()


@api(summary="Charge the caller's pending order", auth="user", body=ChargeBody, body_required=False,
     responses={201: PaymentView, 402: DeclinedPayment, 403: Error, 404: Error, 409: Error})
async def charge_order(request: web.Request) -> web.Response:
    """Charge the caller's pending order with the order's own amount.

    201 with the payment when it succeeded. A declined charge is recorded as a failed payment
    and answered 402 Payment Required, the body being that payment plus a `message`; no money
    moves and the order stays pending (the client may retry with another token).
    404 unknown order, 403 someone else's order, 409 order not pending (already paid,
    cancelled, ...) or another charge of it still in progress, 400 unknown provider or bad body.
    With an `Idempotency-Key` header (1..255 printable ASCII), a repeat of the request gets the
    first answer again and charges nothing; the same key with another request gets 422
    (see docs/payments.md).
    """
    principal = require_role(request, "user")
    key = idempotency.parse_key(request.headers.get(idempotency.HEADER))
    order_id = int_param(request.match_info["orderId"], "orderId")
    body: ChargeBody = await _optional_body(request, ChargeBody)
    answer: ChargeAnswer = await ask(request, ChargeOrder(
        order_id=order_id, user_id=principal.id, provider=domain.check_provider(body.provider),
        payment_method=body.paymentMethod, payment_token=body.paymentToken,
        metadata=domain.check_metadata(body.metadata), idempotency_key=key,
    ))
    return web.Response(body=bytes(answer.body), status=answer.status, content_type="application/json")


@api(summary="The caller's payments, newest first", auth=True, query=PageQuery,
     responses={200: PaymentList})
async def my_payments(request: web.Request) -> web.Response:
    principal = authenticate(request)
    limit = query_int(request, "limit", 50, high=200)
    offset = query_int(request, "offset", 0, low=0, high=MAX_OFFSET)
    payments = await ask(request, ListUserPayments(user_id=principal.id, limit=limit, offset=offset))
    return json_response({"payments": payments, "limit": limit, "offset": offset})


@api(summary="One payment (the owner or an admin)", auth=True, responses={200: PaymentView, 403: Error})
async def get_payment(request: web.Request) -> web.Response:
    authenticate(request)
    payment: PaymentView = await ask(request, GetPayment(
        payment_id=int_param(request.match_info["paymentId"], "paymentId")))
    require_owner_or_admin(request, payment.userId)
    return json_response(payment)


@api(summary="Refund a succeeded payment", auth="admin", body=RefundBody, body_required=False,
     responses={200: PaymentView, 409: Error})
async def refund_payment(request: web.Request) -> web.Response:
    """Admin: succeeded → refunded (PAYMENT_REFUNDED); any other status → 409."""
    require_role(request, "admin")
    payment_id = int_param(request.match_info["paymentId"], "paymentId")
    body: RefundBody = await _optional_body(request, RefundBody)
    payment = await ask(request, RefundPayment(payment_id=payment_id, reason=body.reason))
    return json_response(payment)


@api(summary="Every payment of an order, oldest first", internal=True,
     responses={200: OrderPayments})
async def order_payments(request: web.Request) -> web.Response:
    """Internal: every payment of an order, oldest first."""
    order_id = int_param(request.match_info["orderId"], "orderId")
    payments = await ask(request, ListOrderPayments(order_id=order_id))
    return json_response({"orderId": order_id, "payments": payments})


@api(summary="Settle pending charges with the providers now", internal=True,
     responses={200: ReconcileReport})
async def reconcile(request: web.Request) -> web.Response:
    """Internal: settle pending charges with the providers now (it also runs on a timer)."""
    report: ReconcileReport = await ask(request, ReconcilePayments())
    return json_response(report)


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/payments/me/orders/{orderId}/charge", charge_order)
    app.router.add_get("/payments/me", my_payments)
    app.router.add_get("/payments/{paymentId}", get_payment)
    app.router.add_post("/payments/{paymentId}/refund", refund_payment)
    app.router.add_get("/internal/orders/{orderId}/payments", order_payments)
    app.router.add_post("/internal/payments/reconcile", reconcile)
