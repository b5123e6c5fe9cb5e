"""Command and event handlers of the payment service.

A charge is written ahead: (1) the attempt is committed as a `pending` payment carrying a fresh
idempotency key (PAYMENT_CREATED), (2) the provider is called with that key, (3) its outcome
is committed with PAYMENT_SUCCEEDED or PAYMENT_FAILED. A crash between (2) and (3) leaves a
pending payment whose key the provider knows: reconciliation (at start, then periodically, and
before any new charge of the same order) asks the provider and records what it answers, so no
money is ever taken without a record. An attempt the provider never saw, once older than any
charge could still be on its way, is marked failed.

A charge runs on the worker that owns its order (commands are keyed by order id), so two
charges of one order never overlap here; the unique `success_order_id` index and the order's
guard row (see store.lock_order) keep it right across processes and against ORDER_CANCELLED.

Payment events are keyed by order id: every payment event of one order stays in order.
"""

from __future__ import annotations

import msgspec

from microcommerce import environment
from microcommerce.actors.service import ServiceActor, WorkerContext, handles, on_event
from microcommerce.contracts import order as order_contract
from microcommerce.contracts import payment as events
from microcommerce.contracts.money import to_cents
from microcommerce.contracts.order import GetOrderSummary, MarkOrderPaid, OrderData, OrderSummary
from microcommerce.errors import Conflict, NotFound, ServiceError
from microcommerce.services.payment import domain, idempotency, providers, store
from microcommerce.services.payment.domain import PENDING, REFUNDED, SUCCEEDED
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
from microcommerce.services.payment.providers import ChargeResult
from microcommerce.storage import Executor, IntegrityError

_json = msgspec.json.Encoder()


class _KeyTaken(Exception):
    """Another request claimed the same Idempotency-Key between our look and our claim."""


class PaymentActor(ServiceActor):
    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__(ctx)
        slow_ms = ctx.settings.provider_slow_delay_ms
        self.providers = providers.mock_providers(providers.ledger_for(ctx.settings),
                                                  None if slow_ms is None else slow_ms / 1000.0)
        self.horizon_s = domain.in_flight_horizon_s(ctx.settings.timeout_of("payment"))

    async def on_start(self) -> None:
        if self.ctx.worker_index == 0:
            self.timers.start_single("reconcile-at-start", 0.0, ReconcilePayments())
            interval_s = self.settings.payment_reconcile_interval_ms / 1000.0
            self.timers.start_periodic("reconcile", interval_s, ReconcilePayments())

    # -- charging ----------------------------------------------------------------------------
    @handles(ChargeOrder)
    async def charge(self, cmd: ChargeOrder) -> ChargeAnswer:
        if cmd.idempotency_key is None:
            return _answer(await self._charge(cmd, None))
        keyed = store.KeyedRequest(user_id=cmd.user_id, key_hash=idempotency.key_hash(cmd.idempotency_key),
                                   fingerprint=idempotency.fingerprint(_meaning(cmd)), order_id=cmd.order_id)
        if await store.keyed_request(self.db, keyed.user_id, keyed.key_hash) is not None:
            return await self._replay(keyed)
        try:
            answer = _answer(await self._charge(cmd, keyed))
        except _KeyTaken:
            return await self._replay(keyed)
        except ServiceError as err:
            if isinstance(err, domain.ChargeInProgress) or not idempotency.stored_answer(err):
                raise  # "try again" is not an answer to keep
            answer = ChargeAnswer(status=err.status, body=msgspec.Raw(idempotency.error_body(err)))
        return await self._remember(keyed, answer)

    async def _charge(self, cmd: ChargeOrder, keyed: store.KeyedRequest | None) -> PaymentView:
        order: OrderSummary = await self.request("order", GetOrderSummary(order_id=cmd.order_id))
        in_flight = await self._settle_order(cmd.order_id)  # an earlier attempt may have paid it
        domain.check_chargeable(order.userId, order.status, cmd.user_id,
                                already_paid=await store.has_succeeded(self.db, cmd.order_id),
                                cancelled=await store.is_cancelled(self.db, cmd.order_id))
        if in_flight:
            raise domain.ChargeInProgress
        amount_cents = to_cents(order.totalAmount)  # the order's amount, never the client's
        key = domain.new_attempt_key()
        payment = store.NewPayment(
            order_id=cmd.order_id, user_id=cmd.user_id, provider=cmd.provider, provider_payment_id=None,
            payment_method=cmd.payment_method, status=PENDING, amount_cents=amount_cents,
            currency=order.currency, failure_reason=None, metadata=cmd.metadata,
            idempotency_key=key,
        )
        payment_id = await self.rerun_on_race(lambda: self._write_ahead(payment, keyed))
        result = await self.providers[cmd.provider].charge(key, amount_cents, order.currency, cmd.payment_token)
        view, _ = await self.rerun_on_race(lambda: self._record_outcome(cmd.order_id, payment_id, result))
        if view.status == REFUNDED:
            if view.refundReason == domain.DUPLICATE_CHARGE:
                raise Conflict("Order is already paid; this charge was refunded", details=view)
            raise Conflict("Order was cancelled meanwhile; the charge was refunded", details=view)
        if view.status == SUCCEEDED:
            await self._mark_order_paid(view)
        return view

    async def _write_ahead(self, payment: store.NewPayment, keyed: store.KeyedRequest | None) -> int:
        """Commit the attempt (pending, with its provider key) before the provider hears of it."""
        async with self.db.transaction() as tx:
            if await store.lock_order(tx, payment.order_id):
                raise Conflict("Order is cancelled; it can no longer be charged")
            if await store.has_succeeded(tx, payment.order_id):
                raise Conflict("Order is already paid")
            payment_id = await store.insert(tx, payment)
            if keyed is not None:
                try:
                    await store.claim_key(tx, keyed, payment_id)
                except IntegrityError:
                    raise _KeyTaken from None  # rolls the attempt back: nothing was charged
            await self._announce(tx, events.PAYMENT_CREATED, payment_id)
        return payment_id

    async def _record_outcome(self, order_id: int, payment_id: int, result: ChargeResult) -> tuple[PaymentView, bool]:
        """Settle a pending payment with the provider's answer, with its event, in one transaction.

        Returns the payment and whether this call settled it (False: someone settled it first).
        """
        async with self.db.transaction() as tx:
            cancelled = await store.lock_order(tx, order_id)
            row = await self._existing(tx, payment_id)
            if row["status"] != PENDING:
                return store.to_view(row), False
            if not result.succeeded:
                await store.mark_failed(tx, payment_id, result.failure_reason or "declined",
                                        result.provider_payment_id)
                return await self._announce(tx, events.PAYMENT_FAILED, payment_id), True
            if await store.has_succeeded(tx, order_id):
                # Another attempt (another process) paid the order first: give this money back.
                # No PAYMENT_REFUNDED: that event means "the order's payment was refunded".
                await store.mark_duplicate(tx, payment_id, result.provider_payment_id)
                await self._provider_refund(tx, payment_id)
                self.log.warning("order %s was charged twice; payment %s refunded", order_id, payment_id)
                return store.to_view(await self._existing(tx, payment_id)), True
            await store.mark_succeeded(tx, payment_id, order_id, result.provider_payment_id)
            view = await self._announce(tx, events.PAYMENT_SUCCEEDED, payment_id)
            if cancelled:  # ORDER_CANCELLED was consumed while we charged: undo at once
                view = await self._refund_in(tx, view, "order_cancelled") or view
            return view, True

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

    # -- Idempotency-Key ---------------------------------------------------------------------
    async def _replay(self, keyed: store.KeyedRequest) -> ChargeAnswer:
        """The answer already given under this key (or, after a crash, the one it would have had)."""
        prior = await store.keyed_request(self.db, keyed.user_id, keyed.key_hash)
        assert prior is not None
        if prior["fingerprint"] != keyed.fingerprint:
            return ChargeAnswer(status=idempotency.KEY_REUSED_STATUS,
                                body=msgspec.Raw(_json.encode({"message": idempotency.KEY_REUSED_MESSAGE})))
        if prior["status_code"] is not None:
            return ChargeAnswer(status=int(prior["status_code"]), body=msgspec.Raw(prior["response"].encode()))
        if prior["payment_id"] is None:
            raise domain.ChargeInProgress
        row = await self._existing(self.db, int(prior["payment_id"]))
        view = store.to_view(row) if row["status"] != PENDING else await self._settle(row)
        if view is None:
            raise domain.ChargeInProgress
        return await self._remember(keyed, _answer(view))

    async def _remember(self, keyed: store.KeyedRequest, answer: ChargeAnswer) -> ChargeAnswer:
        """Keep `answer` under the key (claiming it if no attempt did); the first answer kept wins."""
        text = bytes(answer.body).decode()
        if await store.save_answer(self.db, keyed, answer.status, text):
            return answer
        try:
            async with self.db.transaction() as tx:
                await store.claim_key(tx, keyed, None, answer.status, text)
        except IntegrityError:
            return await self._replay(keyed)
        return answer

    # -- reconciliation ----------------------------------------------------------------------
    @handles(ReconcilePayments)
    async def reconcile(self, cmd: ReconcilePayments) -> ReconcileReport:
        settled = in_flight = 0
        for row in await store.pending(self.db, cmd.limit):
            if await self._settle(row) is None:
                in_flight += 1
            else:
                settled += 1
        if settled:
            self.log.info("reconciled %d pending payment(s) with the providers", settled)
        return ReconcileReport(settled=settled, inFlight=in_flight)

    async def _settle_order(self, order_id: int) -> bool:
        """Settle the order's pending attempts; True if one may still be on its way (in flight)."""
        in_flight = False
        for row in await store.pending_for_order(self.db, order_id):
            if await self._settle(row) is None:
                in_flight = True
        return in_flight

    async def _settle(self, row: dict) -> PaymentView | None:
        """Record what the provider knows of a pending attempt; None while it may be in flight."""
        key = row["idempotency_key"]
        result = await self.providers[row["provider"]].lookup(key) if key else None
        if result is None:
            if not domain.may_abandon(row["created_at"], environment.now(), self.horizon_s):
                return None
            result = ChargeResult(provider_payment_id=None, succeeded=False, failure_reason=domain.INTERRUPTED)
        view, settled_here = await self._record_outcome(int(row["order_id"]), int(row["id"]), result)
        if settled_here and view.status == SUCCEEDED:
            try:
                await self._mark_order_paid(view)
            except ServiceError as err:
                self.log.warning("payment %s reconciled: %s", view.id, err.message)
        return view

    # -- refunds and reads -------------------------------------------------------------------
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
        """Refund what was paid and remember the cancellation, so later charges get 409.

        An attempt still pending is settled by whoever records its outcome: that transaction
        takes the same guard row, sees the cancellation and refunds at once.
        """
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
        await self._provider_refund(tx, view.id)
        return await self._announce(tx, events.PAYMENT_REFUNDED, view.id)

    async def _provider_refund(self, tx: Executor, payment_id: int) -> None:
        """Refund at the provider under a key per payment: if this transaction is lost and the
        refund retried (a redelivered ORDER_CANCELLED, the admin again), the provider refunds once."""
        row = await self._existing(tx, payment_id)
        key = domain.refund_key(row["idempotency_key"], payment_id)
        refund_id = await self.providers[row["provider"]].refund(key, row["provider_payment_id"] or "")
        await store.set_refund_id(tx, payment_id, refund_id)

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


def _meaning(cmd: ChargeOrder) -> dict:
    """What makes two charge requests the same request (the user and key aside)."""
    return {"orderId": cmd.order_id, "provider": cmd.provider, "paymentMethod": cmd.payment_method,
            "paymentToken": cmd.payment_token, "metadata": cmd.metadata}


def _answer(view: PaymentView) -> ChargeAnswer:
    """201 with a succeeded payment; 402 with a declined one plus its message; 409 if refunded."""
    status = domain.answer_status(view.status)
    if status == 201:
        return ChargeAnswer(status=status, body=msgspec.Raw(_json.encode(view)))
    if status == 402:
        declined = msgspec.to_builtins(view)
        declined["message"] = domain.decline_message(view.failureReason)
        return ChargeAnswer(status=status, body=msgspec.Raw(_json.encode(declined)))
    conflict = Conflict("The charge was refunded", details=view)
    return ChargeAnswer(status=status, body=msgspec.Raw(idempotency.error_body(conflict)))
