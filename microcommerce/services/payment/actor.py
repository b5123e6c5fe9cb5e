"""Command and event handlers of the payment service.

A charge runs on the worker that owns its order (commands are keyed by order id), so two
charges of one order never overlap here; the unique `success_order_id` index and the order's
guard row (see store.lock_order) keep it right across processes and against ORDER_CANCELLED.

Payment events are keyed by order id: every payment event of one order stays in order.
"""

from __future__ import annotations

from microcommerce.actors.service import ServiceActor, handles, on_event
from microcommerce.contracts import order as order_contract
from microcommerce.contracts import payment as events
from microcommerce.contracts.money import to_cents
from microcommerce.contracts.order import GetOrderSummary, MarkOrderPaid, OrderData, OrderSummary
from microcommerce.errors import Conflict, NotFound, ServiceError
from microcommerce.services.payment import domain, store
from microcommerce.services.payment.messages import (
    ChargeOrder,
    GetPayment,
    ListOrderPayments,
    ListUserPayments,
    PaymentView,
    RefundPayment,
)
from microcommerce.services.payment.providers import PROVIDERS, ChargeResult
from microcommerce.storage import Executor, IntegrityError


class PaymentActor(ServiceActor):
    @handles(ChargeOrder)
    async def charge(self, cmd: ChargeOrder) -> PaymentView:
        order: OrderSummary = await self.request("order", GetOrderSummary(order_id=cmd.order_id))
        domain.check_chargeable(order.userId, order.status, cmd.user_id,
                                already_paid=await store.has_succeeded(self.db, cmd.order_id),
                                cancelled=await store.is_cancelled(self.db, cmd.order_id))
        provider = PROVIDERS[cmd.provider]
        amount_cents = to_cents(order.totalAmount)  # the order's amount, never the client's
        result = provider.charge(amount_cents, order.currency, cmd.payment_token)
        payment = store.NewPayment(
            order_id=cmd.order_id, user_id=cmd.user_id, provider=cmd.provider,
            provider_payment_id=result.provider_payment_id, payment_method=cmd.payment_method,
            status=domain.PENDING, amount_cents=amount_cents, currency=order.currency,
            failure_reason=None, metadata=cmd.metadata,
        )
        try:
            view = await self._record_charge(payment, result)
        except IntegrityError:
            # Another process paid this order between our check and our commit: give the money back.
            provider.refund(result.provider_payment_id)
            raise Conflict("Order is already paid") from None
        if view.status == domain.REFUNDED:
            raise Conflict("Order was cancelled meanwhile; the charge was refunded", details=view)
        if view.status == domain.SUCCEEDED:
            await self._mark_order_paid(view)
        return view

    async def _record_charge(self, payment: store.NewPayment, result: ChargeResult) -> PaymentView:
        """One transaction: the payment, PAYMENT_CREATED, then its outcome and event."""
        async with self.db.transaction() as tx:
            cancelled = await store.lock_order(tx, payment.order_id)
            payment_id = await store.insert(tx, payment)
            await self._announce(tx, events.PAYMENT_CREATED, payment_id)
            if not result.succeeded:
                await store.mark_failed(tx, payment_id, result.failure_reason or "declined")
                return await self._announce(tx, events.PAYMENT_FAILED, payment_id)
            await store.mark_succeeded(tx, payment_id, payment.order_id)
            view = await self._announce(tx, events.PAYMENT_SUCCEEDED, payment_id)
            if cancelled:  # ORDER_CANCELLED was consumed after our pre-check: undo at once
                view = await self._refund_in(tx, view, "order_cancelled") or view
            return view

    async def _mark_order_paid(self, view: PaymentView) -> None:
        """Tell the order service now; if it cannot hear us, PAYMENT_SUCCEEDED tells it later."""
        try:
            await self.request("order", MarkOrderPaid(order_id=view.orderId, payment_id=view.id))
        except (Conflict, NotFound):
            refunded = await self._refund(view.id, "order_not_payable")
            raise Conflict("The order can no longer be paid; the payment was refunded",
                           details=refunded or view) from None
        except ServiceError as err:
            self.log.warning("order %s not confirmed paid (%s); PAYMENT_SUCCEEDED is the backstop",
                             view.orderId, err.message)

    @handles(RefundPayment)
    async def refund(self, cmd: RefundPayment) -> PaymentView:
        async with self.db.transaction() as tx:
            view = store.to_view(await self._existing(tx, cmd.payment_id))
            domain.check_refundable(view.status)
            refunded = await self._refund_in(tx, view, cmd.reason)
        if refunded is None:
            raise Conflict("Payment is no longer refundable")
        return refunded

    @handles(GetPayment)
    async def get_payment(self, cmd: GetPayment) -> PaymentView:
        return store.to_view(await self._existing(self.db, cmd.payment_id))

    @handles(ListUserPayments)
    async def list_user_payments(self, cmd: ListUserPayments) -> list[PaymentView]:
        return [store.to_view(row) for row in await store.for_user(self.db, cmd.user_id, cmd.limit, cmd.offset)]

    @handles(ListOrderPayments)
    async def list_order_payments(self, cmd: ListOrderPayments) -> list[PaymentView]:
        return [store.to_view(row) for row in await store.for_order(self.db, cmd.order_id)]

    @on_event(order_contract.ORDER_CANCELLED)
    async def on_order_cancelled(self, tx: Executor, data: OrderData, envelope: object) -> None:
        """Refund what was paid and remember the cancellation, so later charges get 409."""
        await store.lock_order(tx, data.id)
        await store.mark_cancelled(tx, data.id)
        for row in await store.succeeded_for_order(tx, data.id):
            await self._refund_in(tx, store.to_view(row), "order_cancelled")

    # -- helpers -------------------------------------------------------------------------
    async def _refund(self, payment_id: int, reason: str) -> PaymentView | None:
        async with self.db.transaction() as tx:
            view = store.to_view(await self._existing(tx, payment_id))
            return await self._refund_in(tx, view, reason)

    async def _refund_in(self, tx: Executor, view: PaymentView, reason: str) -> PaymentView | None:
        """succeeded → refunded with PAYMENT_REFUNDED; None when someone else refunded it first."""
        if not await store.mark_refunded(tx, view.id, reason):
            return None
        # The mock provider answers in memory; a real one would be called from a retried job.
        refund_id = PROVIDERS[view.provider].refund(view.providerPaymentId or "")
        await store.set_refund_id(tx, view.id, refund_id)
        return await self._announce(tx, events.PAYMENT_REFUNDED, view.id)

    async def _announce(self, tx: Executor, event_name: str, payment_id: int) -> PaymentView:
        """Emit `event_name` with the payment as it now is; returns that view."""
        view = store.to_view(await self._existing(tx, payment_id))
        await self.emit(tx, event_name, view.orderId, store.to_event(view))
        return view

    @staticmethod
    async def _existing(db: Executor, payment_id: int) -> dict:
        row = await store.by_id(db, payment_id)
        if row is None:
            raise NotFound(f"Payment {payment_id} not found")
        return row
