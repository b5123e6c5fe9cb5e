"""The chaos harness end to end: a short run is valid, and planted bugs (switched on here by
monkeypatching service modules, never by flags in the services) are caught by the matching
checker with a counterexample naming ids."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from microcommerce.actors.service import ServiceActor
from microcommerce.actors.system import ActorSystem
from microcommerce.chaos.faults import FaultPlan
from microcommerce.chaos.faulty_requests import FaultyRequester
from microcommerce.chaos.runner import RunConfig, RunResult, run_chaos, write_outputs
from microcommerce.chaos.simulation import simulate
from microcommerce.contracts.events import event_type, utc_now_iso
from microcommerce.contracts.order import MarkOrderPaid
from microcommerce.contracts.payment import PAYMENT_CREATED
from microcommerce.errors import Conflict, UpstreamTimeout
from microcommerce.services.cart import domain as cart_domain
from microcommerce.services.cart import store as cart_store
from microcommerce.services.inventory import store as inventory_store
from microcommerce.services.notification import domain as notification_domain
from microcommerce.services.notification import store as notification_store
from microcommerce.services.notification.actor import NotificationActor
from microcommerce.services.order import domain as order_domain
from microcommerce.services.order.actor import OrderActor
from microcommerce.services.order.messages import CancelOrder, OrderView
from microcommerce.services.payment import domain as payment_domain
from microcommerce.services.payment import store as payment_store
from microcommerce.services.payment.actor import PaymentActor
from microcommerce.storage import open_database

ROOT = Path(__file__).resolve().parents[2]


RUNNERS = ["threaded", "deterministic"]


def run(seed: int, duration: float = 3.0, shoppers: int = 6, runner: str = "threaded",
        families: tuple[str, ...] = (), rates: dict[str, float] | None = None) -> RunResult:
    """One run on either runner, with the same workload density (shoppers don't pause longer
    in simulated time here) so a planted bug meets the same pressure."""
    config = RunConfig(seed=seed, duration=duration, shoppers=shoppers, families=families,
                       deterministic=runner == "deterministic", think_s=0.03)

    def plan(cfg: RunConfig) -> FaultPlan:
        return FaultPlan(cfg.seed, cfg.families, rates=rates)

    if config.deterministic:
        return simulate(config, progress=None, plan_factory=plan)
    return asyncio.run(run_chaos(config, progress=None, plan=plan(config)))


def test_a_short_run_without_faults_is_valid_and_writes_its_files(tmp_path: Path) -> None:
    result = run(seed=11)
    assert result.valid is True, result.checkers
    assert result.ops["ok"] > 50 and result.healed
    write_outputs(result, tmp_path)
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["valid"] is True and doc["seed"] == 11
    assert set(doc["checkers"]) == {"stock", "payments", "lifecycle", "acknowledged-writes", "projections",
                                   "exactly-once"}
    assert all(set(c) == {"valid", "counterexample"} for c in doc["checkers"].values())
    assert isinstance(doc["faults"], dict) and set(doc["ops"]) >= {"ok", "fail", "info"}
    lines = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert {e["type"] for e in lines} >= {"invoke", "ok", "fail"}
    assert all({"process", "op", "args", "t"} <= set(e) for e in lines)
    assert (tmp_path / "faults.jsonl").exists()


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_reservation_without_its_stock_condition_is_caught(monkeypatch: pytest.MonkeyPatch, runner: str) -> None:
    async def take_without_condition(tx, product_id: int, quantity: int) -> bool:  # noqa: ANN001
        await tx.execute("UPDATE stock SET reserved_quantity = reserved_quantity + ?, version = version + 1 "
                         "WHERE product_id = ?", quantity, product_id)
        return True

    monkeypatch.setattr(inventory_store, "take_available", take_without_condition)
    result = run(seed=12, runner=runner)
    stock = result.checkers["stock"]
    assert stock["valid"] is False, result.checkers
    assert isinstance(stock["counterexample"]["product"], int)
    assert stock["counterexample"]["ledger"]["available"] < 0
    assert result.valid is False


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_refund_that_skips_the_provider_is_caught(monkeypatch: pytest.MonkeyPatch, runner: str) -> None:
    async def no_provider_refund(self, tx, payment_id: int) -> None:  # noqa: ANN001
        return None

    monkeypatch.setattr(PaymentActor, "_provider_refund", no_provider_refund)
    result = run(seed=13, runner=runner)
    payments = result.checkers["payments"]
    assert payments["valid"] is False, result.checkers
    assert "says refunded but" in payments["counterexample"]["detail"]  # names the payment id


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_consumer_applying_an_event_twice_without_its_dedupe_is_caught(monkeypatch: pytest.MonkeyPatch, runner: str) -> None:
    migrate = ActorSystem.migrate

    async def migrate_without_unique_key(self: ActorSystem) -> list[str]:
        applied = await migrate(self)
        if self.name == "notification":
            async def drop() -> None:
                db = open_database(self.database_url)
                await db.connect()
                await db.execute("DROP INDEX notifications_source_channel")
                await db.close()
            await self.runtime.isolated(drop)
        return applied

    notify = NotificationActor._notify

    async def notify_twice(self, *args, **kwargs) -> None:  # noqa: ANN001, ANN002, ANN003
        await notify(self, *args, **kwargs)
        await notify(self, *args, **kwargs)  # a redelivery that no inbox stopped

    monkeypatch.setattr(ActorSystem, "migrate", migrate_without_unique_key)
    monkeypatch.setattr(NotificationActor, "_notify", notify_twice)
    result = run(seed=14, duration=2.0, shoppers=3, runner=runner)
    once = result.checkers["exactly-once"]
    assert once["valid"] is False, result.checkers
    assert once["counterexample"]["duplicate"] == "notification" and once["counterexample"]["event"]
    assert len(once["counterexample"]["notifications"]) == 2


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_consumer_without_its_inbox_claim_is_caught(monkeypatch: pytest.MonkeyPatch, runner: str) -> None:
    """Effects may still be stopped by unique keys, but the event is not applied through the
    inbox: nothing records that the group applied it, nothing stops a redelivery."""

    async def apply_without_claim(self: ServiceActor, envelope) -> bool:  # noqa: ANN001
        name = self.event_handlers.get(envelope.eventType)
        if name is None:
            return False
        async with self.db.transaction() as tx:
            await getattr(self, name)(tx, envelope.data, envelope)
        return True

    monkeypatch.setattr(ServiceActor, "apply_event", apply_without_claim)
    result = run(seed=15, duration=2.0, shoppers=3, runner=runner)
    once = result.checkers["exactly-once"]
    assert once["valid"] is False, result.checkers
    example = once["counterexample"]
    assert example["not applied"] and example["eventType"] and example["producer"]
    assert example["consumers"] and set(example["consumers"]) <= {
        "user", "cart", "order", "product", "inventory", "search", "payment", "notification", "audit"}


def _lose_mark_order_paid(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fault the payment service is built to survive: its MarkOrderPaid never reaches the
    order service (PAYMENT_SUCCEEDED is the backstop), so for a moment the order still says
    pending while the payment service knows it is paid. No fault family loses exactly this
    request, so the test adds it at the requester seam (no service knows)."""
    send = FaultyRequester._send

    async def lossy_send(self: FaultyRequester, service: str, command, *, timeout: float):  # noqa: ANN001, ANN202
        if isinstance(command, MarkOrderPaid) and not self.plan.stopped:
            raise UpstreamTimeout(f"{service} service did not answer in {timeout:g}s (request lost)")
        return await send(self, service, command, timeout=timeout)

    monkeypatch.setattr(FaultyRequester, "_send", lossy_send)


def test_lost_mark_paid_requests_leave_the_real_code_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    _lose_mark_order_paid(monkeypatch)
    result = run(seed=16)
    assert result.valid is True, result.checkers
    pays = [op for op in result.history.completions() if op["op"] == "pay"]
    assert sum(op["type"] == "ok" for op in pays) > 10  # orders were paid, by the backstop
    assert any(op["type"] == "fail" and op["result"]["status"] == 409 for op in pays)  # double clicks refused


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_charge_without_its_duplicate_guard_is_caught(monkeypatch: pytest.MonkeyPatch, runner: str) -> None:
    """The payment service forgets that it already took the order's money (the `already paid`
    checks before the provider is called); the order's status and the refund of a duplicate
    remain. While the order still says pending, a double click is charged a second time."""
    chargeable = payment_domain.check_chargeable

    def check_without_paid(order_user_id: int, order_status: str, caller_id: int, *, already_paid: bool,
                           cancelled: bool) -> None:
        chargeable(order_user_id, order_status, caller_id, already_paid=False, cancelled=cancelled)

    async def write_ahead_without_paid_check(self: PaymentActor, payment, keyed) -> int:  # noqa: ANN001
        async with self.db.transaction() as tx:
            if await payment_store.lock_order(tx, payment.order_id):
                raise Conflict("Order is cancelled; it can no longer be charged")
            payment_id = await payment_store.insert(tx, payment)
            if keyed is not None:
                await payment_store.claim_key(tx, keyed, payment_id)
            await self._announce(tx, PAYMENT_CREATED, payment_id)
        return payment_id

    monkeypatch.setattr(payment_domain, "check_chargeable", check_without_paid)
    monkeypatch.setattr(PaymentActor, "_write_ahead", write_ahead_without_paid_check)
    _lose_mark_order_paid(monkeypatch)
    result = run(seed=16, runner=runner)
    payments = result.checkers["payments"]
    assert payments["valid"] is False, result.checkers
    example = payments["counterexample"]
    assert isinstance(example["order"], int) and "captured 2 times" in example["problem"]
    assert len(example["charges"]) == 2 and len({p["id"] for p in example["payments"]}) == 2


@pytest.mark.parametrize("runner", RUNNERS)
def test_an_owner_cancelling_a_paid_order_is_caught(monkeypatch: pytest.MonkeyPatch, runner: str) -> None:
    """Owners may cancel only pending orders. A handler that cancels from whatever status it
    read is refunded correctly, so only the order's lifecycle shows it."""
    async def cancel_from_any_status(self: OrderActor, cmd: CancelOrder) -> OrderView:
        row = await self.db.fetch_one("SELECT user_id, status FROM orders WHERE id = ?", cmd.order_id)
        if row is None or row["status"] not in ("pending", "paid"):
            raise Conflict(f"Order {cmd.order_id} can no longer be cancelled")
        async with self.db.transaction() as tx:
            view = await self._move(tx, cmd.order_id, row["status"], "cancelled", reason="cancelled by user")
        if view is None:
            raise Conflict(f"Order {cmd.order_id} changed meanwhile; reload it and retry")
        await self._release_stock(cmd.order_id, "cancelled")
        return view

    monkeypatch.setattr(OrderActor, "cancel_order", cancel_from_any_status)
    result = run(seed=17, runner=runner)
    lifecycle = result.checkers["lifecycle"]
    assert lifecycle["valid"] is False, result.checkers
    example = lifecycle["counterexample"]
    assert isinstance(example["order"], int) and example["path"][-1] == ("paid", "cancelled")
    assert "owner's cancel" in example["problem"]


@pytest.mark.parametrize("runner", RUNNERS)
def test_an_order_total_that_ignores_quantities_is_caught(monkeypatch: pytest.MonkeyPatch, runner: str) -> None:
    monkeypatch.setattr(order_domain, "total_cents", lambda lines: sum(line.unit_price_cents for line in lines))
    result = run(seed=18, runner=runner)
    lifecycle = result.checkers["lifecycle"]
    assert lifecycle["valid"] is False, result.checkers
    assert "its lines sum to" in lifecycle["counterexample"]["problem"]
    assert isinstance(lifecycle["counterexample"]["order"], int)


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_sale_that_leaves_its_units_on_hand_is_caught(monkeypatch: pytest.MonkeyPatch, runner: str) -> None:
    """Shipping moves the units from reserved to sold but not off the shelf: reserved and sold
    still match the reservations, only the stock put in (STOCK_UPDATED) shows them counted twice."""
    async def sell_keeping_on_hand(tx, product_id: int, quantity: int) -> None:  # noqa: ANN001
        await tx.execute("UPDATE stock SET reserved_quantity = reserved_quantity - ?, sold_quantity = sold_quantity "
                         "+ ?, version = version + 1, updated_at = ? WHERE product_id = ? AND reserved_quantity >= ?",
                         quantity, quantity, utc_now_iso(), product_id, quantity)

    monkeypatch.setattr(inventory_store, "sell_reserved", sell_keeping_on_hand)
    result = run(seed=19, runner=runner)
    stock = result.checkers["stock"]
    assert stock["valid"] is False, result.checkers
    assert isinstance(stock["counterexample"]["product"], int)
    assert "units were put in stock" in stock["counterexample"]["problem"]


@pytest.mark.parametrize("runner", RUNNERS)
def test_payment_notifications_sent_to_the_payment_id_are_caught(monkeypatch: pytest.MonkeyPatch, runner: str) -> None:
    async def notify_payment_id(self: NotificationActor, tx, data, envelope) -> None:  # noqa: ANN001
        user = await notification_store.user(tx, data.id)  # the payment's id taken for its user's
        message = notification_domain.payment_message(envelope.eventType, data, user.name if user else None)
        await self._notify(tx, envelope, data.id, message, email=user.email if user else None)

    monkeypatch.setattr(NotificationActor, "on_payment_event", notify_payment_id)
    result = run(seed=20, runner=runner)
    projections = result.checkers["projections"]
    assert projections["valid"] is False, result.checkers
    example = projections["counterexample"]
    assert example["eventType"].startswith("PAYMENT_") and isinstance(example["notification"], int)
    assert "the event is about user" in example["problem"]


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_cart_that_keeps_what_a_paid_order_bought_is_caught(monkeypatch: pytest.MonkeyPatch, runner: str) -> None:
    monkeypatch.setattr(cart_domain, "bought_quantities", lambda items: {})  # ORDER_PAID takes nothing out
    result = run(seed=22, runner=runner)
    projections = result.checkers["projections"]
    assert projections["valid"] is False, result.checkers
    example = projections["counterexample"]
    assert example["problem"] == "the cart holds units a paid order bought"
    assert example["quantity"] > example["atMost"] and example["paidOrders"]


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_paid_order_that_empties_the_whole_cart_is_caught(monkeypatch: pytest.MonkeyPatch, runner: str) -> None:
    async def take_everything(tx, cart_id: int, bought: dict[int, int]) -> None:  # noqa: ANN001
        await tx.execute("DELETE FROM cart_items WHERE cart_id = ?", cart_id)

    monkeypatch.setattr(cart_store, "take_bought", take_everything)
    result = run(seed=23, runner=runner)
    acknowledged = result.checkers["acknowledged-writes"]
    assert acknowledged["valid"] is False, result.checkers
    example = acknowledged["counterexample"]
    assert example["problem"] == "the cart lost units that no paid order bought"
    assert example["holds"] < example["atLeast"] and example["adds"]
    assert isinstance(example["cart line"]["product"], int)


@pytest.mark.parametrize("runner", RUNNERS)
def test_an_order_request_that_ignores_its_idempotency_key_is_caught(monkeypatch: pytest.MonkeyPatch,
                                                                     runner: str) -> None:
    """Every attempt places an order: a client retrying after a lost answer gets a second one."""
    async def once_ignoring_key(self: OrderActor, user_id: int, key, work):  # noqa: ANN001, ANN202
        return await work(None)

    monkeypatch.setattr(OrderActor, "_once", once_ignoring_key)
    result = run(seed=22, duration=5.0, runner=runner, families=("timeout",), rates={"timeout": 0.2})
    once = result.checkers["exactly-once"]
    assert once["valid"] is False, result.checkers
    example = once["counterexample"]
    assert example["duplicate"] == "order" and len(example["orders"]) > len(example["unknownRequests"])


@pytest.mark.parametrize("runner", RUNNERS)
def test_shipping_an_unpaid_order_is_caught(monkeypatch: pytest.MonkeyPatch, runner: str) -> None:
    """The status machine lets a pending order ship: only the admin's out-of-turn ship meets it."""
    monkeypatch.setitem(order_domain.TRANSITIONS, order_domain.PENDING,
                        (order_domain.PAID, order_domain.SHIPPED, order_domain.CANCELLED))
    result = run(seed=21, duration=5.0, runner=runner)
    lifecycle = result.checkers["lifecycle"]
    assert lifecycle["valid"] is False, result.checkers
    example = lifecycle["counterexample"]
    assert isinstance(example["order"], int) and ("pending", "shipped") in example["path"]
    assert "pending -> shipped" in example["problem"]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "microcommerce.cli", "chaos", *args], cwd=cwd,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, capture_output=True,
                          text=True, timeout=90)


def test_cli_help_bad_flags_and_exit_code(tmp_path: Path) -> None:
    assert "--seeds A-B" in _cli("--help", cwd=tmp_path).stdout
    for bad in (["--faults", "bogus"], ["--seeds", "5-2"], ["--duration", "0"], ["--duration", "nan"], ["--nope"],
                ["--shoppers", "5000"], ["--seed", "-1"], ["--think", "inf"], ["--out", "a-file"]):
        (tmp_path / "a-file").write_text("results cannot go into a file\n")
        done = _cli(*bad, cwd=tmp_path)
        assert done.returncode == 2, (bad, done)
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr
        assert "chaos run:" not in done.stdout, (bad, done.stdout)  # refused before any run
    done = _cli("--seed", "5", "--duration", "1.5", "--shoppers", "3", "--out", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "replay   microcommerce chaos --seed 5" in done.stdout
    assert json.loads((tmp_path / "out" / "results.json").read_text())["valid"] is True


@pytest.mark.parametrize("runner", RUNNERS)
def test_events_published_before_their_commit_are_caught(monkeypatch: pytest.MonkeyPatch, runner: str) -> None:
    """A relay that publishes at emit time, not after the commit: transactions that then roll
    back (db faults) leave effects of events nobody committed."""
    original = ServiceActor.emit

    async def emit_before_commit(self, tx, event_name, key, data):  # noqa: ANN001
        envelope = await original(self, tx, event_name, key, data)
        self.ctx.bus.publish(event_type(event_name).topic, str(key), envelope)
        return envelope

    monkeypatch.setattr(ServiceActor, "emit", emit_before_commit)
    # A high rate so even a slow machine sees transactions roll back after they emitted.
    result = run(seed=13, duration=4.0, families=("db",), rates={"db": 0.4}, runner=runner)
    exactly_once = result.checkers["exactly-once"]
    assert exactly_once["valid"] is False, result.checkers
    assert "applied but never committed" in exactly_once["counterexample"]
