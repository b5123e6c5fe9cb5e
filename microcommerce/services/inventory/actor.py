"""Inventory handlers: stock levels, reservations of the order saga, expiry.

Commands for one order land on one worker, but a product's stock is shared by every order:
each change is a conditional update whose `rowcount` decides, so two workers (or two
processes on MySQL) can never reserve more than is available.
"""

from __future__ import annotations

import msgspec

from microcommerce import environment
from microcommerce.actors.service import ServiceActor, handles, on_event
from microcommerce.contracts import inventory as events
from microcommerce.contracts.events import EventEnvelope, utc_now_iso
from microcommerce.contracts.inventory import (
    ConfirmOrderStock,
    DiscontinueStock,
    GetStock,
    ReleaseOrderStock,
    Reservation,
    ReserveLine,
    ReserveStock,
    SetStockTotal,
    StockChanged,
    StockLevel,
)
from microcommerce.contracts.order import ORDER_CANCELLED, ORDER_PAID, ORDER_SHIPPED, OrderData
from microcommerce.contracts.product import (
    PRODUCT_CREATED,
    PRODUCT_DELETED,
    ProductData,
    ProductDeleted,
)
from microcommerce.errors import Conflict, NotFound
from microcommerce.services.inventory import domain, store
from microcommerce.services.inventory.domain import CONFIRMED, EXPIRED, RELEASED, RESERVED
from microcommerce.services.inventory.messages import ReleaseExpired, ReleaseReservation, SetStock
from microcommerce.storage import Executor, IntegrityError


class InventoryActor(ServiceActor):
    async def on_start(self) -> None:
        if self.ctx.worker_index == 0:
            interval_s = self.settings.reservation_sweep_interval_ms / 1000.0
            self.timers.start_periodic("reservation-expiry", interval_s, ReleaseExpired())

    # -- stock ---------------------------------------------------------------------------
    @handles(GetStock)
    async def get_stock(self, cmd: GetStock) -> StockLevel:
        return store.to_stock_level(await _existing_stock(self.db, cmd.product_id))

    @handles(SetStock)
    async def set_stock(self, cmd: SetStock) -> StockLevel:
        async with self.db.transaction() as tx:
            row = await _existing_stock(tx, cmd.product_id)
            domain.check_may_adjust(cmd.actor_role, cmd.actor_id, row["owner_id"])
            await self._set_total(tx, row, cmd.total_quantity)
            return store.to_stock_level(await _existing_stock(tx, cmd.product_id))

    @handles(SetStockTotal)
    async def set_stock_total(self, cmd: SetStockTotal) -> StockChanged:
        """The catalog's PATCH stockQuantity: the product service checked who may change it."""
        async with self.db.transaction() as tx:
            return await self._set_total(tx, await _existing_stock(tx, cmd.product_id), cmd.total_quantity)

    async def _set_total(self, tx: Executor, row: dict, total: int) -> StockChanged:
        product_id = int(row["product_id"])
        before = store.to_levels(row)
        domain.set_total(before, total, product_id)
        if not await store.set_total(tx, product_id, total):
            # More was reserved since we read: the rule speaks again, with today's numbers.
            now = store.to_levels(await _existing_stock(tx, product_id))
            domain.set_total(now, total, product_id)
            raise Conflict(f"Stock of product {product_id} changed, retry")
        return await self._announce(tx, events.STOCK_UPDATED, product_id,
                                    quantity=total - before.total, reason="adjusted")

    @handles(DiscontinueStock)
    async def discontinue_stock(self, cmd: DiscontinueStock) -> StockLevel:
        async with self.db.transaction() as tx:
            return await self._discontinue(tx, cmd.product_id)

    @on_event(PRODUCT_DELETED)
    async def product_deleted(self, tx: Executor, data: ProductDeleted, envelope: EventEnvelope) -> None:
        await self._discontinue(tx, data.id)  # backstop of the product service's DiscontinueStock

    async def _discontinue(self, tx: Executor, product_id: int) -> StockLevel:
        if await store.discontinue(tx, product_id):
            await self._announce(tx, events.STOCK_UPDATED, product_id, reason="discontinued")
        return store.to_stock_level(await _existing_stock(tx, product_id))

    @on_event(PRODUCT_CREATED)
    async def product_created(self, tx: Executor, data: ProductData, envelope: EventEnvelope) -> None:
        quantity = domain.initial_quantity(data.stockQuantity)
        # INSERT OR IGNORE: stock that already exists is never overwritten by a redelivery.
        if await store.insert_stock(tx, data.id, quantity, data.createdBy):
            await self._announce(tx, events.STOCK_UPDATED, data.id, quantity=quantity, reason="initial")

    # -- reservations ----------------------------------------------------------------------
    @handles(ReserveStock)
    async def reserve_stock(self, cmd: ReserveStock) -> list[Reservation]:
        lines = domain.merge_lines(cmd.lines)
        expires_at = domain.expiry(environment.now(), self.settings.reservation_ttl_s, cmd.expires_at)
        try:
            return await self._reserve(cmd.order_id, lines, expires_at)
        except IntegrityError:
            # The same (order, product) was reserved concurrently: answer with that reservation.
            return await self._reserve(cmd.order_id, lines, expires_at)

    async def _reserve(self, order_id: int, lines: list[ReserveLine], expires_at: str) -> list[Reservation]:
        """All lines or none: a short line raises, and the transaction undoes the others."""
        async with self.db.transaction() as tx:
            existing = {int(row["product_id"]): row for row in await store.reservations_of_order(tx, order_id)}
            reservations = []
            for line in lines:
                row = existing.get(line.productId)
                if row is not None:
                    reservations.append(store.to_reservation(row))  # a retry: reserved already
                else:
                    reservations.append(await self._reserve_line(tx, order_id, line, expires_at))
            return reservations

    async def _reserve_line(self, tx: Executor, order_id: int, line: ReserveLine, expires_at: str) -> Reservation:
        if not await store.take_available(tx, line.productId, line.quantity):
            row = await _existing_stock(tx, line.productId)
            domain.check_still_sold(bool(row["discontinued"]), line.productId)
            levels = store.to_levels(row)
            domain.reserve(levels, line.quantity, line.productId)  # raises the shortage Conflict
            raise Conflict(domain.shortage_message(line.productId, line.quantity, levels.available))
        reservation_id = await store.insert_reservation(tx, order_id, line.productId, line.quantity, expires_at)
        await self._announce(tx, events.STOCK_RESERVED, line.productId, orderId=order_id,
                             reservationId=reservation_id, quantity=line.quantity)
        return Reservation(id=reservation_id, orderId=order_id, productId=line.productId,
                           quantity=line.quantity, status=RESERVED, expiresAt=expires_at)

    @handles(ReleaseReservation)
    async def release_reservation(self, cmd: ReleaseReservation) -> Reservation:
        async with self.db.transaction() as tx:
            row = await store.reservation(tx, cmd.reservation_id)
            if row is None:
                raise NotFound(f"Reservation {cmd.reservation_id} not found")
            reservation, _ = await self._release(tx, row, "released")
            return reservation

    @handles(ReleaseOrderStock)
    async def release_order_stock(self, cmd: ReleaseOrderStock) -> list[Reservation]:
        domain.status_after_release(cmd.reason)  # an unknown reason is a 400 before anything changes
        async with self.db.transaction() as tx:
            return await self._release_order(tx, cmd.order_id, cmd.reason)

    @on_event(ORDER_CANCELLED)
    async def order_cancelled(self, tx: Executor, data: OrderData, envelope: EventEnvelope) -> None:
        await self._release_order(tx, data.id, "cancelled")  # backstop of ReleaseOrderStock

    async def _release_order(self, tx: Executor, order_id: int, reason: str) -> list[Reservation]:
        return [(await self._release(tx, row, reason))[0]
                for row in await store.reservations_of_order(tx, order_id)]

    async def _release(self, tx: Executor, row: dict, reason: str) -> tuple[Reservation, bool]:
        """Release one live reservation; (its state afterwards, whether this call released it)."""
        reservation = store.to_reservation(row)
        to_status = domain.status_after_release(reason)
        if reservation.status != RESERVED:
            return reservation, False
        # Expiry never takes a held (paid) reservation; a cancellation does.
        if not await store.move_reservation(tx, reservation.id, RESERVED, to_status,
                                            only_unheld=to_status == EXPIRED):
            return store.to_reservation(await store.reservation(tx, reservation.id)), False
        await store.give_back(tx, reservation.productId, reservation.quantity)
        await self._announce(tx, events.STOCK_RELEASED, reservation.productId, orderId=reservation.orderId,
                             reservationId=reservation.id, quantity=reservation.quantity, reason=reason)
        return msgspec.structs.replace(reservation, status=to_status), True

    @handles(ConfirmOrderStock)
    async def confirm_order_stock(self, cmd: ConfirmOrderStock) -> list[Reservation]:
        async with self.db.transaction() as tx:
            return [await self._confirm(tx, row, sell_lapsed=True)
                    for row in await store.reservations_of_order(tx, cmd.order_id)]

    @on_event(ORDER_SHIPPED)
    async def order_shipped(self, tx: Executor, data: OrderData, envelope: EventEnvelope) -> None:
        # Backstop only: lapsed reservations were settled (or refused) by the ConfirmOrderStock request.
        for row in await store.reservations_of_order(tx, data.id):
            await self._confirm(tx, row, sell_lapsed=False)

    async def _confirm(self, tx: Executor, row: dict, *, sell_lapsed: bool) -> Reservation:
        reservation = store.to_reservation(row)
        if reservation.status == RESERVED:
            if not await store.move_reservation(tx, reservation.id, RESERVED, CONFIRMED):
                return store.to_reservation(await store.reservation(tx, reservation.id))
            await store.sell_reserved(tx, reservation.productId, reservation.quantity)
        elif reservation.status in (RELEASED, EXPIRED) and sell_lapsed:
            # The reservation lapsed (expiry raced the payment) yet the order ships: sell the
            # units from what is available now, or refuse to ship rather than oversell.
            if not await store.move_reservation(tx, reservation.id, reservation.status, CONFIRMED):
                return store.to_reservation(await store.reservation(tx, reservation.id))
            if not await store.sell_available(tx, reservation.productId, reservation.quantity):
                raise Conflict(f"Reservation of product {reservation.productId} for order "
                               f"{reservation.orderId} lapsed and the stock is gone")
        else:
            return reservation
        await self._announce(tx, events.STOCK_CONFIRMED, reservation.productId, orderId=reservation.orderId,
                             reservationId=reservation.id, quantity=reservation.quantity)
        return msgspec.structs.replace(reservation, status=CONFIRMED)

    @on_event(ORDER_PAID)
    async def order_paid(self, tx: Executor, data: OrderData, envelope: EventEnvelope) -> None:
        await store.hold_order(tx, data.id)

    @handles(ReleaseExpired)
    async def release_expired(self, cmd: ReleaseExpired) -> int:
        rows = await store.expired(self.db, utc_now_iso(), cmd.limit)
        if not rows:
            return 0
        async with self.db.transaction() as tx:
            return sum([(await self._release(tx, row, "expired"))[1] for row in rows])

    # -- events ----------------------------------------------------------------------------
    async def _announce(self, tx: Executor, event_name: str, product_id: int, *, orderId: int | None = None,
                        reservationId: int | None = None, quantity: int = 0, reason: str = "") -> StockChanged:
        """Emit one stock event carrying the product's levels after the change; return its data."""
        row = await _existing_stock(tx, product_id)
        level = store.to_stock_level(row)
        change = StockChanged(
            productId=product_id, totalQuantity=level.totalQuantity, reservedQuantity=level.reservedQuantity,
            availableQuantity=level.availableQuantity, soldQuantity=level.soldQuantity, orderId=orderId,
            reservationId=reservationId, quantity=quantity, reason=reason, version=int(row["version"]))
        await self.emit(tx, event_name, product_id, change)
        return change


async def _existing_stock(db: Executor, product_id: int) -> dict:
    row = await store.stock(db, product_id)
    if row is None:
        raise NotFound(f"No stock for product {product_id}")
    return row

