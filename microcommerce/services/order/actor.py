"""Order handlers and the order saga.

Placing an order: read the cart (request), insert the order as internal "reserving", reserve
its stock (request), then make it "pending" and announce ORDER_CREATED. Requests never run
inside a transaction. Every status change is conditional on the status it expects, because
events about an order (payments, stock expiry) may be handled by another worker at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from microcommerce import environment
from microcommerce.actors.service import ServiceActor, handles, on_event
from microcommerce.contracts import order as events
from microcommerce.contracts import user as user_events
from microcommerce.contracts.cart import CartView, GetCart
from microcommerce.contracts.events import EventEnvelope, iso_from_epoch
from microcommerce.contracts.inventory import (
    STOCK_RELEASED,
    ConfirmOrderStock,
    ReleaseOrderStock,
    Reservation,
    ReserveLine,
    ReserveStock,
    StockChanged,
)
from microcommerce.contracts.order import GetOrderSummary, MarkOrderPaid, OrderData, OrderSummary
from microcommerce.contracts.payment import PAYMENT_REFUNDED, PAYMENT_SUCCEEDED, PaymentData
from microcommerce.errors import BadRequest, Conflict, NotFound, ServiceError
from microcommerce.http.idempotency import IdempotencyKey
from microcommerce.services.order import domain, idempotency, store
from microcommerce.services.order.domain import CANCELLED, FAILED, PAID, PENDING, RESERVING, SHIPPED
from microcommerce.services.order.messages import (
    CancelOrder,
    ChangeOrderStatus,
    CheckoutCart,
    GetOrder,
    ListUserOrders,
    OrderExists,
    OrderView,
    PlaceOrder,
    SweepStaleOrders,
)
from microcommerce.storage import Executor

EVENT_OF_STATUS = {
    PENDING: events.ORDER_CREATED,
    PAID: events.ORDER_PAID,
    SHIPPED: events.ORDER_SHIPPED,
    domain.DELIVERED: events.ORDER_DELIVERED,
    CANCELLED: events.ORDER_CANCELLED,
    domain.REFUNDED: events.ORDER_REFUNDED,
}


def order_event(view: OrderView, previous_status: str) -> OrderData:
    return OrderData(id=view.id, userId=view.userId, status=view.status, items=view.items,
                     totalAmount=view.totalAmount, currency=view.currency, reason=view.cancelReason or "",
                     paymentId=view.paymentId, previousStatus=previous_status)


class OrderActor(ServiceActor):
    async def on_start(self) -> None:
        if self.ctx.worker_index == 0:
            interval_s = self.settings.reservation_sweep_interval_ms / 1000.0
            self.timers.start_periodic("order-sweep", interval_s, SweepStaleOrders())

    # -- placing orders ------------------------------------------------------------------------
    @handles(PlaceOrder)
    async def place_order(self, cmd: PlaceOrder) -> OrderView:
        async def place(key_id: int | None) -> OrderView:
            cart = await self._cart(cmd.user_id)
            line = domain.line_from_cart(cart.items, cmd.product_id, cmd.quantity)
            return await self._open(cmd.user_id, [line], cart.currency, key_id)

        return await self._once(cmd.user_id, cmd.idempotency, place)

    @handles(CheckoutCart)
    async def checkout(self, cmd: CheckoutCart) -> OrderView:
        async def check_out(key_id: int | None) -> OrderView:
            cart = await self._cart(cmd.user_id)
            return await self._open(cmd.user_id, domain.lines_from_cart(cart.items), cart.currency, key_id)

        return await self._once(cmd.user_id, cmd.idempotency, check_out)

    async def _once(self, user_id: int, key: IdempotencyKey | None,
                    work: Callable[[int | None], Awaitable[OrderView]]) -> OrderView:
        """Without an Idempotency-Key every request places an order; with one, only the first."""
        if key is None:
            return await work(None)
        return await idempotency.once(self.db, self.settings, user_id, key, work, self._recover)

    async def _recover(self, order_id: int) -> OrderView | None:
        """The order a lost attempt with the same key left: its view if it went through; else
        None (after giving back a reservation it may hold) so the order is placed again."""
        row = await store.order(self.db, order_id)
        if row is None:
            return None
        if domain.is_visible(row["status"]):
            return await _view(self.db, order_id)
        if row["status"] == RESERVING:
            await self._abandon(order_id, release=True)
        return None

    async def _cart(self, user_id: int) -> CartView:
        try:
            return await self.request("cart", GetCart(user_id=user_id))
        except NotFound:
            return CartView(userId=user_id, items=[], totalQuantity=0, totalAmount=0)

    async def _open(self, user_id: int, lines: list[domain.Line], currency: str,
                    key_id: int | None = None) -> OrderView:
        domain.check_line_quantities(lines, self.settings.max_order_line_quantity)
        async with self.db.transaction() as tx:
            # One user's orders run on one worker, so the count cannot move under us here.
            domain.check_pending_limit(await store.open_orders_of(tx, user_id),
                                       self.settings.max_pending_orders_per_user)
            order_id = await store.insert_order(tx, user_id, lines, currency, domain.total_cents(lines))
            if key_id is not None:
                await store.attach_order(tx, key_id, order_id)
        reserve = ReserveStock(order_id=order_id, lines=[ReserveLine(line.product_id, line.quantity)
                                                         for line in lines])
        try:
            _check_live(await self.request("inventory", reserve))
        except ServiceError as err:
            # Refused outright (409/404): nothing was reserved. Otherwise (timeout, outage) the
            # reservation may exist: give it back, or let it expire if inventory stays unreachable.
            await self._abandon(order_id, release=not isinstance(err, Conflict | NotFound | BadRequest))
            raise _as_stock_error(err) from None
        async with self.db.transaction() as tx:
            view = await self._move(tx, order_id, RESERVING, PENDING)
        if view is None:  # the sweep gave up on it meanwhile (only after a very long stall)
            await self._release_stock(order_id, "released")
            raise Conflict("The order took too long to reserve its stock; please try again")
        return view

    async def _abandon(self, order_id: int, *, release: bool) -> None:
        if release:
            await self._release_stock(order_id, "released")
        async with self.db.transaction() as tx:
            await store.move(tx, order_id, RESERVING, FAILED)

    # -- reading -------------------------------------------------------------------------------
    @handles(GetOrder)
    async def get_order(self, cmd: GetOrder) -> OrderView:
        await _visible(self.db, cmd.order_id)
        return await _view(self.db, cmd.order_id)

    @handles(ListUserOrders)
    async def list_user_orders(self, cmd: ListUserOrders) -> list[OrderView]:
        rows = await store.orders_of_user(self.db, cmd.user_id, cmd.limit, cmd.offset)
        items = await store.items_of(self.db, [int(row["id"]) for row in rows])
        return [store.to_view(row, items[int(row["id"])]) for row in rows]

    @handles(OrderExists)
    async def order_exists(self, cmd: OrderExists) -> bool:
        row = await store.order(self.db, cmd.order_id)
        return row is not None and domain.is_visible(row["status"])

    @handles(GetOrderSummary)
    async def get_order_summary(self, cmd: GetOrderSummary) -> OrderSummary:
        return store.to_summary(await _visible(self.db, cmd.order_id))

    # -- status changes ----------------------------------------------------------------------------
    @handles(CancelOrder)
    async def cancel_order(self, cmd: CancelOrder) -> OrderView:
        row = await _visible(self.db, cmd.order_id)
        owner_id = int(row["user_id"])
        domain.check_owner_or_admin(cmd.actor_role, cmd.actor_id, owner_id)
        domain.check_cancellable(row["status"])
        reason = domain.cancel_reason(cmd.actor_id, owner_id)
        async with self.db.transaction() as tx:
            view = await self._move(tx, cmd.order_id, PENDING, CANCELLED, reason=reason)
            if view is None:  # paid or expired since we looked
                domain.check_cancellable((await _visible(tx, cmd.order_id))["status"])
                raise Conflict(f"Order {cmd.order_id} changed meanwhile; reload it and retry")
        await self._release_stock(cmd.order_id, "cancelled")
        return view

    @handles(ChangeOrderStatus)
    async def change_status(self, cmd: ChangeOrderStatus) -> OrderView:
        current = (await _visible(self.db, cmd.order_id))["status"]
        target = domain.check_status(cmd.status)
        domain.check_transition(current, target)
        if target == SHIPPED:
            # Stock is deducted for good before the order says shipped; a refusal keeps it paid.
            await self.request("inventory", ConfirmOrderStock(order_id=cmd.order_id))
        reason = domain.ADMIN_CANCEL_REASON if target == CANCELLED else None
        async with self.db.transaction() as tx:
            view = await self._move(tx, cmd.order_id, current, target, reason=reason)
        if view is None:
            raise Conflict(f"Order {cmd.order_id} changed meanwhile; reload it and retry")
        if target == CANCELLED:
            await self._release_stock(cmd.order_id, "cancelled")
        return view

    @handles(MarkOrderPaid)
    async def mark_order_paid(self, cmd: MarkOrderPaid) -> OrderSummary:
        async with self.db.transaction() as tx:
            row = await _visible(tx, cmd.order_id)
            if domain.payment_applies(row["status"]):
                moved = await self._move(tx, cmd.order_id, PENDING, PAID, payment_id=cmd.payment_id)
                if moved is None:  # cancelled (409) or paid by PAYMENT_SUCCEEDED (fine) meanwhile
                    domain.payment_applies((await _visible(tx, cmd.order_id))["status"])
            return store.to_summary(await _visible(tx, cmd.order_id))

    @handles(SweepStaleOrders)
    async def sweep_stale_orders(self, cmd: SweepStaleOrders) -> int:
        """Backstop of reservation expiry, and cleanup after a crash between insert and reserve."""
        cutoff = domain.stale_cutoff(environment.now(), self.settings.reservation_ttl_s,
                                     self.settings.reservation_sweep_interval_ms / 1000.0)
        cancelled = 0
        for row in await store.created_before(self.db, PENDING, cutoff, cmd.limit):
            async with self.db.transaction() as tx:
                view = await self._move(tx, int(row["id"]), PENDING, CANCELLED, reason=domain.EXPIRED_REASON)
            if view is not None:
                cancelled += 1
                await self._release_stock(view.id, "expired")
        for row in await store.created_before(self.db, RESERVING, cutoff, cmd.limit):
            await self._abandon(int(row["id"]), release=True)
        async with self.db.transaction() as tx:
            await store.forget_keys_before(tx, iso_from_epoch(environment.now() - self.settings.idempotency_key_ttl_s))
        return cancelled

    # -- events ------------------------------------------------------------------------------------
    @on_event(PAYMENT_SUCCEEDED)
    async def payment_succeeded(self, tx: Executor, data: PaymentData, envelope: EventEnvelope) -> None:
        """Backstop of MarkOrderPaid: a pending order becomes paid; any other state is left alone."""
        await self._move(tx, data.orderId, PENDING, PAID, payment_id=data.id)

    @on_event(PAYMENT_REFUNDED)
    async def payment_refunded(self, tx: Executor, data: PaymentData, envelope: EventEnvelope) -> None:
        """The payment that paid the order was refunded: the order is no longer paid.

        A paid order is cancelled (ORDER_CANCELLED releases its pinned reservation); a shipped or
        delivered one becomes `refunded`. Refunds of other payments (a charge the order never
        took, the refund that follows a cancellation) change nothing, and neither does a
        redelivery. Statuses only move forward, so a status changed meanwhile (shipped while we
        looked) is read again and the rule applied to it.
        """
        for _ in domain.STATUSES:
            row = await store.order(tx, data.orderId)
            if row is None or row["payment_id"] is None or int(row["payment_id"]) != data.id:
                return
            target = domain.status_after_refund(row["status"])
            if target is None:
                return
            if await self._move(tx, data.orderId, row["status"], target, reason=domain.REFUND_REASON):
                return

    @on_event(STOCK_RELEASED)
    async def stock_released(self, tx: Executor, data: StockChanged, envelope: EventEnvelope) -> None:
        """A lapsed reservation cancels its order. Usually the order is pending (never paid in
        time). It can also be paid: the payment landed after inventory's sweep took the units
        back but before ORDER_PAID pinned them. That order has no stock left, so it is cancelled
        too, and ORDER_CANCELLED from paid refunds it."""
        if data.reason == "expired" and data.orderId is not None:
            for status in domain.LAPSE_CANCELS:
                if await self._move(tx, data.orderId, status, CANCELLED, reason=domain.EXPIRED_REASON):
                    return

    @on_event(user_events.USER_CREATED, user_events.USER_UPDATED)
    async def user_changed(self, tx: Executor, data: user_events.UserData, envelope: EventEnvelope) -> None:
        await store.upsert_user(tx, data.id, data.name, data.email, data.role, data.accountStatus)

    @on_event(user_events.USER_DELETED)
    async def user_deleted(self, tx: Executor, data: user_events.UserDeleted, envelope: EventEnvelope) -> None:
        await store.delete_user(tx, data.id, data.email)

    # -- helpers -----------------------------------------------------------------------------------
    async def _move(self, tx: Executor, order_id: int, from_status: str, to_status: str, *,
                    reason: str | None = None, payment_id: int | None = None) -> OrderView | None:
        """Change status and announce it in one transaction; None if the order was not `from_status`."""
        if not await store.move(tx, order_id, from_status, to_status, reason=reason, payment_id=payment_id):
            return None
        view = await _view(tx, order_id)
        event_name = EVENT_OF_STATUS.get(to_status)
        if event_name is not None:
            previous = from_status if domain.is_visible(from_status) else ""
            await self.emit(tx, event_name, order_id, order_event(view, previous))
        return view

    async def _release_stock(self, order_id: int, reason: str) -> None:
        """Ask inventory now; if it cannot answer, ORDER_CANCELLED (or expiry) releases later."""
        try:
            await self.request("inventory", ReleaseOrderStock(order_id=order_id, reason=reason))
        except ServiceError as err:
            self.log.warning("stock of order %s not released now (%s); the event will do it",
                             order_id, err.message)


def _check_live(reservations: list[Reservation]) -> None:
    """A retried reservation may come back released (an earlier attempt was undone): refuse it."""
    lapsed = [r.productId for r in reservations if r.status != "reserved"]
    if lapsed:
        raise Conflict(f"Stock reservation for product {lapsed[0]} lapsed; please try again")


def _as_stock_error(err: ServiceError) -> ServiceError:
    if isinstance(err, NotFound):
        return Conflict(f"Not available: {err.message}")  # inventory has no stock for the product
    return err


async def _visible(db: Executor, order_id: int) -> dict:
    row = await store.order(db, order_id)
    if row is None or not domain.is_visible(row["status"]):
        raise NotFound(f"Order {order_id} not found")
    return row


async def _view(db: Executor, order_id: int) -> OrderView:
    row = await store.order(db, order_id)
    assert row is not None
    return store.to_view(row, (await store.items_of(db, [order_id]))[order_id])
