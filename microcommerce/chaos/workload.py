"""Virtual shoppers (and one admin) through the gateway's real HTTP routes.

Each process draws its decisions from its own stream, seeded from the plan's "workload" stream,
so the same seed gives each shopper the same sequence of draws. Clients retry like real ones:
on 5xx, timeouts and connection errors, with backoff, reusing the `Idempotency-Key` where the
API has one; an op whose write may have landed but whose answer was lost is recorded `info`.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from microcommerce import environment
from microcommerce.chaos.history import History
from microcommerce.chaos.transport import Transport

PASSWORD = "chaos-password-1"
RETRYABLE = {500, 502, 503, 504}
ATTEMPTS = 4
ATTEMPT_TIMEOUT_S = 5.0

# "buy" is the journey that pays (add to the cart, order those units, pay at once); the other
# ops are the detours and races around it.
SHOPPER_MIX = {
    "browse": 5, "search": 4, "cart_add": 6, "buy": 30, "order_one": 5, "checkout": 6, "pay": 10,
    "pay_again": 3, "cancel": 4, "read_orders": 4, "read_notifications": 3,
}
ADMIN_MIX = {"restock": 6, "ship": 4, "deliver": 2, "refund": 3, "cancel_paid": 2, "ship_pending": 2, "idle": 1}
DECLINED_TOKEN = "tok_chargeDeclined"  # the mock provider declines it (card_declined)
DECLINE_RATE = 0.15  # a charge sent with a card that will be declined
RETRY_DECLINED_RATE = 0.8  # after a decline, pay again with a good card (else leave it pending)
DOUBLE_CLICK_RATE = 0.2  # two charges of one order sent at once, each with its own key
ABANDON_RATE = 0.1  # an order cancelled by its shopper instead of paid
SCARCE_BELOW = 2  # the admin restocks a product once fewer units than this are available


@dataclass
class World:
    """What the clients learned from answers, shared so the admin can act on shoppers' orders."""

    products: list[int] = field(default_factory=list)
    pending_orders: list[int] = field(default_factory=list)  # as far as their shoppers know
    paid_orders: list[int] = field(default_factory=list)
    shipped_orders: list[int] = field(default_factory=list)
    payments: list[int] = field(default_factory=list)


def _line_quantity(cart: Any, product_id: int) -> dict[str, Any]:
    """The units of one product in an answered cart (its lines are not scalar fields)."""
    items = cart.get("items") if isinstance(cart, dict) else None
    lines = [line for line in items or () if isinstance(line, dict) and line.get("productId") == product_id]
    return {"lineQuantity": sum(int(line.get("quantity", 0)) for line in lines)}


def _in_progress(answer: Any) -> bool:
    """A 409 that asks to retry: an earlier attempt (or another charge of the order) still runs."""
    return isinstance(answer, dict) and "in progress" in str(answer.get("message", ""))


def _brief(body: Any) -> Any:
    """The scalar fields of an answer (ids, statuses, amounts): enough to check it, small to keep."""
    if isinstance(body, dict):
        return {k: ("<redacted>" if k == "token" else v) for k, v in body.items()
                if isinstance(v, str | int | float | bool) or v is None}
    return body if isinstance(body, str | int | float | bool) or body is None else type(body).__name__


class Client:
    """One process's HTTP client: every call is one op in the history."""

    def __init__(self, transport: Transport, history: History, process: str, rng: random.Random) -> None:
        self.transport = transport
        self.history = history
        self.process = process
        self.rng = rng
        self.token: str | None = None
        self._keys = 0

    def new_key(self) -> str:
        self._keys += 1
        return f"{self.process}-k{self._keys}"

    async def call(self, op: str, method: str, path: str, *, body: Any = None, write: bool = True,
                   idempotency_key: str | None = None, args: dict[str, Any] | None = None,
                   keep: Callable[[Any], dict[str, Any]] | None = None) -> tuple[str, int | None, Any]:
        """Run one op with retries; returns (outcome, last status, body). `keep` picks what a
        2xx answer holds beyond its scalar fields into the op's result (small: it is history)."""
        index = self.history.invoke(self.process, op, {"path": path, **(args or {}),
                                                       **({"key": idempotency_key} if idempotency_key else {})})
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        ambiguous = False  # an earlier attempt may have been applied
        status: int | None = None
        answer: Any = None
        for attempt in range(ATTEMPTS):
            if attempt:
                await asyncio.sleep(0.05 * 2 ** attempt)
            try:
                status, text = await self.transport.send(method, path, body, headers, ATTEMPT_TIMEOUT_S)
                try:
                    answer = json.loads(text) if text else None
                except ValueError:
                    answer = text[:200]
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                status, answer = None, f"{type(exc).__name__}"
                ambiguous = True
                continue
            if status in RETRYABLE:
                ambiguous = True
                continue
            if status == 409 and _in_progress(answer):
                continue  # "retry shortly": an attempt with this key (or of this order) still runs
            break
        result = {"status": status, "body": _brief(answer)}
        if attempt:  # a write without a key retried after an ambiguous attempt may have applied twice
            result["attempts"] = attempt + 1
        if status is not None and 200 <= status < 300:
            outcome = "ok"
            if keep is not None:
                result.update(keep(answer))
        elif status is not None and status < 500 and not (
                ambiguous and write and (not idempotency_key or _in_progress(answer))):
            outcome = "fail"  # a refusal; with an idempotency key it is the one answer of the request
        else:
            outcome = "info" if write else "fail"  # a read has no effect: its failure is certain
        self.history.complete(index, outcome, result)
        return outcome, status, answer


class Shopper:
    def __init__(self, client: Client, world: World, plan: Any, number: int) -> None:
        self.client = client
        self.world = world
        self.plan = plan
        self.rng = client.rng
        self.email = f"shopper{number}-s{plan.seed}@chaos.test"
        self.user_id: int | None = None
        self.pending: list[int] = []
        self.paid: list[int] = []
        self.in_cart: list[int] = []  # products this shopper added (orders come from the cart)

    async def start(self) -> bool:
        c = self.client
        outcome, _, body = await c.call("signup", "POST", "/auth/signup", args={"email": self.email},
                                        body={"name": c.process, "email": self.email, "password": PASSWORD})
        if outcome == "ok":
            self.user_id = body["id"]
        return await self.login()

    async def login(self) -> bool:
        outcome, _, body = await self.client.call("login", "POST", "/auth/login", write=False,
                                                  args={"email": self.email},
                                                  body={"email": self.email, "password": PASSWORD})
        if outcome == "ok":
            self.client.token = body["token"]
            self.user_id = self.user_id or (body.get("user") or {}).get("id")
        return outcome == "ok"

    async def step(self) -> None:
        if self.client.token is None:
            await self.login()
            return
        action = self.rng.choices(list(SHOPPER_MIX), weights=list(SHOPPER_MIX.values()))[0]
        await getattr(self, action)()

    def _product(self) -> int:
        return self.rng.choice(self.world.products)

    async def browse(self) -> None:
        await self.client.call("browse", "GET", "/products?pageSize=20", write=False)

    async def search(self) -> None:
        word = self.rng.choice(["gadget", "widget", "chaos", "thing"])
        await self.client.call("search", "GET", f"/search/products?q={word}", write=False)

    async def cart_add(self) -> None:
        await self._add_to_cart(self._product(), self.rng.randint(1, 2))

    async def _add_to_cart(self, pid: int, qty: int) -> bool:
        outcome, _, _ = await self.client.call("cart_add", "POST", "/carts/me/items",
                                               args={"productId": pid, "quantity": qty},
                                               body={"productId": pid, "quantity": qty},
                                               keep=lambda cart: _line_quantity(cart, pid))
        if outcome == "ok" and pid not in self.in_cart:
            self.in_cart.append(pid)
        return outcome == "ok"

    async def order_one(self) -> None:
        # Mostly what is in the cart (as a shopper does); sometimes anything (a 400 to expect).
        pid = self.rng.choice(self.in_cart) if self.in_cart and self.rng.random() < 0.9 else self._product()
        await self._order(pid, self.rng.randint(1, 2))

    async def _order(self, pid: int, qty: int) -> int | None:
        outcome, _, body = await self.client.call(
            "order", "POST", "/orders/me", body={"productId": pid, "quantity": qty},
            idempotency_key=self.client.new_key(), args={"productId": pid, "quantity": qty})
        if outcome != "ok":
            return None
        self._placed(body["id"])
        return body["id"]

    async def checkout(self) -> None:
        outcome, _, body = await self.client.call("checkout", "POST", "/orders/me/checkout",
                                                  idempotency_key=self.client.new_key())
        if outcome == "ok":
            self._placed(body["id"])

    def _placed(self, oid: int) -> None:
        self.pending.append(oid)
        self.world.pending_orders.append(oid)

    def _settled(self, oid: int) -> None:
        """Paid or cancelled: no longer pending for anyone."""
        for held in (self.pending, self.world.pending_orders):
            if oid in held:
                held.remove(oid)

    async def buy(self) -> None:
        """Add a product to the cart, order those units and pay for them at once (or, now and
        then, cancel instead). Every decision is drawn up front, so the shopper's stream moves
        by the same draws whatever the system answers."""
        pid, qty, abandon = self._product(), self.rng.randint(1, 2), self.rng.random() < ABANDON_RATE
        payment = self._payment_plan()
        if not await self._add_to_cart(pid, qty):
            return
        oid = await self._order(pid, qty)
        if oid is None:
            return
        if abandon:
            await self._cancel(oid)
        else:
            await self._pay(oid, *payment)

    async def pay(self) -> None:
        if not self.pending:
            return await self.buy()
        oid = self.rng.choice(self.pending)
        await self._pay(oid, *self._payment_plan())

    def _payment_plan(self) -> tuple[bool, bool, bool]:
        """(declined card, two clicks at once, retry a decline with a good card): three draws."""
        return (self.rng.random() < DECLINE_RATE, self.rng.random() < DOUBLE_CLICK_RATE,
                self.rng.random() < RETRY_DECLINED_RATE)

    async def _pay(self, oid: int, declined: bool, double_click: bool, retry_declined: bool) -> None:
        """Charge the order; a double click sends two charges at once, each with its own key
        (the order's worker runs them one after the other: the second must be refused, never
        charged). A declined card is followed by another try with a good one, if so decided."""
        token = DECLINED_TOKEN if declined else self.plan.provider_token("stripe", "tok_visa")
        clicks = 2 if double_click else 1
        answers = await asyncio.gather(*(self._charge(oid, token) for _ in range(clicks)))
        if declined and retry_declined and all(status == 402 for _, status, _ in answers):
            await self._charge(oid, self.plan.provider_token("stripe", "tok_visa"))

    async def _charge(self, oid: int, token: str) -> tuple[str, int | None, Any]:
        answer = await self.client.call(
            "pay", "POST", f"/payments/me/orders/{oid}/charge", body={"provider": "stripe", "paymentToken": token},
            idempotency_key=self.client.new_key(), args={"orderId": oid, "token": token})
        outcome, _, body = answer
        if outcome == "ok" and isinstance(body, dict) and body.get("status") == "succeeded" and oid in self.pending:
            self._settled(oid)
            self.paid.append(oid)
            self.world.paid_orders.append(oid)
            self.world.payments.append(body["id"])
        return answer

    async def pay_again(self) -> None:
        """A double click after the order was paid: must be refused, never charged twice."""
        if not self.paid:
            return await self.pay()
        oid = self.rng.choice(self.paid)
        await self.client.call("pay", "POST", f"/payments/me/orders/{oid}/charge",
                               body={"provider": "stripe", "paymentToken": "tok_visa"},
                               idempotency_key=self.client.new_key(), args={"orderId": oid, "token": "tok_visa"})

    async def cancel(self) -> None:
        orders = self.pending or self.paid
        if not orders:
            return
        await self._cancel(self.rng.choice(orders))

    async def _cancel(self, oid: int) -> None:
        outcome, _, _ = await self.client.call("cancel", "PATCH", f"/orders/{oid}/cancel", args={"orderId": oid})
        if outcome == "ok":
            self._settled(oid)
            if oid in self.paid:
                self.paid.remove(oid)

    async def read_orders(self) -> None:
        await self.client.call("read_orders", "GET", "/orders/me", write=False)

    async def read_notifications(self) -> None:
        await self.client.call("read_notifications", "GET", "/notifications/me?limit=50", write=False)


class Admin:
    """Restocks, moves paid orders along (now and then a pending one, out of turn), cancels paid
    orders, refunds: the races shoppers meet."""

    def __init__(self, client: Client, world: World) -> None:
        self.client = client
        self.world = world
        self.rng = client.rng

    async def step(self) -> None:
        action = self.rng.choices(list(ADMIN_MIX), weights=list(ADMIN_MIX.values()))[0]
        await getattr(self, action)()

    async def idle(self) -> None:
        await asyncio.sleep(0.05)

    async def restock(self) -> None:
        pid = self.rng.choice(self.world.products)
        add = self.rng.randint(3, 6)
        outcome, _, body = await self.client.call("read_stock", "GET", f"/inventory/{pid}", write=False,
                                                  args={"productId": pid})
        if outcome != "ok" or not isinstance(body, dict):
            return
        if int(body.get("availableQuantity", 0)) >= SCARCE_BELOW:
            return  # only a product about to run out: orders keep racing for the last units, and keep coming
        total = int(body.get("totalQuantity", 0)) + add
        await self.client.call("restock", "PUT", f"/inventory/{pid}/stock", body={"totalQuantity": total},
                               args={"productId": pid, "totalQuantity": total})

    async def _move(self, source: list[int], status: str, target: list[int] | None) -> None:
        if not source:
            return
        oid = self.rng.choice(source)
        outcome, _, _ = await self.client.call(status, "PATCH", f"/orders/{oid}/status", body={"status": status},
                                               args={"orderId": oid, "status": status})
        if outcome in ("ok", "fail"):
            if oid in source:  # a shopper may have settled a pending order meanwhile
                source.remove(oid)
            if outcome == "ok" and target is not None:
                target.append(oid)

    async def ship(self) -> None:
        await self._move(self.world.paid_orders, "shipped", self.world.shipped_orders)

    async def ship_pending(self) -> None:
        """Out of turn: ship an order its shopper has not paid. A 409 is the answer to expect; the
        lifecycle checker judges what happened (an unpaid order must never be shipped)."""
        await self._move(self.world.pending_orders, "shipped", self.world.shipped_orders)

    async def deliver(self) -> None:
        await self._move(self.world.shipped_orders, "delivered", None)

    async def cancel_paid(self) -> None:
        """An admin cancels a paid order: the payment service must refund it (ORDER_CANCELLED)."""
        await self._move(self.world.paid_orders, "cancelled", None)

    async def refund(self) -> None:
        if not self.world.payments:
            return
        pid = self.rng.choice(self.world.payments)
        outcome, _, _ = await self.client.call("refund", "POST", f"/payments/{pid}/refund", body={},
                                               args={"paymentId": pid})
        if outcome in ("ok", "fail"):
            self.world.payments.remove(pid)


async def run_process(actor: Shopper | Admin, stop_at: float, think_s: float = 0.03) -> None:
    """Step until the deadline; a harness bug in one step is recorded, never hidden."""
    while environment.monotonic() < stop_at:
        await actor.step()
        await asyncio.sleep(actor.rng.uniform(0.0, think_s))
