"""Checkout load: N concurrent virtual shoppers through the gateway of a real all-in-one node.

The node runs in its own process (`microcommerce dev --ephemeral --no-access-log`, ports from
the environment, rate limit out of the way); this process is the client. An admin first creates
a category and products with large stock. Then, at each level of `--shoppers`, every shopper
repeats one checkout:

    signup -> login -> wait for the cart -> add to cart -> order -> pay (tok_visa) -> read order

for `--seconds` (or until `--checkouts` are done) and the run prints completed checkouts/s,
p50/p95/p99 of the whole checkout and of each step, and failures by step and status.

Passwords are hashed with bcrypt at PASSWORD_HASH_COST (default 10, the production default):
signup and login each pay one hash, so on a small machine the hashing dominates; `--hash-cost 4`
shows what the rest of the platform can do.

    .venv/bin/python bench/checkout_load.py --shoppers 1,8,32 [--seconds 15 | --checkouts 200]
        [--hash-cost 10] [--products 20] [--deployment all-in-one | per-service]

`--deployment per-service` runs the same load against ten `microcommerce serve` processes on
MariaDB (`--mysql HOST:PORT`, its own databases, dropped afterwards) and a Kafka-protocol broker
(Tansu, from the test extra), and also reports the USER_CREATED → cart lag read from the rows.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from microcommerce.ports import free_ports

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("gateway", "user", "cart", "order", "product", "inventory", "search", "payment",
            "notification", "audit")
ADMIN_EMAIL = "bench-admin@microcommerce.local"
ADMIN_PASSWORD = "bench-admin-password"
SHOPPER_PASSWORD = "shopper-password-1"
STEPS = ("signup", "login", "cart ready", "add to cart", "order", "pay", "read order")
CART_WAIT_S = 15.0


class BenchFailed(Exception):
    """The run cannot go on; the message says why."""


class StepFailed(Exception):
    """One checkout failed at `step` (HTTP status or exception name in `outcome`)."""

    def __init__(self, step: str, outcome: str, detail: str = "") -> None:
        super().__init__(f"{step}: {outcome} {detail}".strip())
        self.step = step
        self.outcome = outcome


# -- the node under test ------------------------------------------------------------------------
@dataclass
class Node:
    """`microcommerce dev` in a child process, its output in a temporary log file."""

    hash_cost: int
    ports: dict[str, int] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def start(self) -> None:
        self.ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
        env = {**os.environ, **{f"{name.upper()}_PORT": str(port) for name, port in self.ports.items()}}
        env.update({
            "RATE_LIMIT_MAX": "1000000000",
            "PASSWORD_HASH_COST": str(self.hash_cost),
            "BOOTSTRAP_ADMIN_EMAIL": ADMIN_EMAIL,
            "BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "LOG_LEVEL": "warning",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        })
        env.pop("MICROCOMMERCE_CONFIG", None)  # the figures must not depend on a stray config file
        handle, name = tempfile.mkstemp(prefix="mc-bench-node-", suffix=".log")
        self.log_path = Path(name)
        with os.fdopen(handle, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "microcommerce.cli", "dev", "--ephemeral", "--no-access-log"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    async def wait_ready(self, session: aiohttp.ClientSession, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise BenchFailed(f"the node exited with status {self.proc.returncode}:\n{self.log_tail()}")
            try:
                async with session.get(f"{self.gateway}/health") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
        raise BenchFailed(f"the node was not healthy within {timeout:g}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # graceful: drain mailboxes, close pools
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no output)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:]) or "(no output)"


# -- HTTP helpers ---------------------------------------------------------------------------------
class Client:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def call(self, step: str, method: str, path: str, *, expect: int, token: str | None = None,
                   json: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        try:
            async with self.session.request(method, self.base + path, json=json, headers=headers) as resp:
                body = await resp.json(content_type=None) if resp.content_length != 0 else None
                if resp.status != expect:
                    message = body.get("message", "") if isinstance(body, dict) else ""
                    raise StepFailed(step, str(resp.status), message)
                return body
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise StepFailed(step, type(exc).__name__, str(exc)) from None


# -- catalog setup --------------------------------------------------------------------------------
async def create_catalog(client: Client, products: int, stock: int) -> list[int]:
    """A category and `products` products with `stock` units each; returns their ids once
    the inventory service has taken their stock (it learns it from PRODUCT_CREATED)."""
    login = await client.call("admin login", "POST", "/auth/login", expect=200,
                              json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    admin = login["token"]
    category = await client.call("create category", "POST", "/categories", expect=201, token=admin,
                                 json={"name": f"Bench {uuid.uuid4().hex[:8]}"})
    ids = []
    for i in range(products):
        product = await client.call("create product", "POST", "/products", expect=201, token=admin, json={
            "categoryId": category["id"], "name": f"Bench item {i + 1}", "price": 9.99,
            "stockQuantity": stock})
        ids.append(product["id"])
    deadline = time.monotonic() + 30
    for product_id in ids:
        while True:
            try:
                inventory = await client.call("stock", "GET", f"/inventory/{product_id}", expect=200)
                if inventory.get("availableQuantity", 0) >= stock:
                    break
            except StepFailed:
                pass
            if time.monotonic() > deadline:
                raise BenchFailed(f"product {product_id}'s stock never reached the inventory service")
            await asyncio.sleep(0.05)
    return ids


# -- one shopper ----------------------------------------------------------------------------------
_shopper_numbers = itertools.count(1)


@dataclass
class LevelStats:
    shoppers: int
    checkout_s: list[float] = field(default_factory=list)
    step_s: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    elapsed_s: float = 0.0

    @property
    def completed(self) -> int:
        return len(self.checkout_s)


async def timed(stats: LevelStats, step: str, call: Any) -> Any:
    started = time.perf_counter()
    result = await call
    stats.step_s[step].append(time.perf_counter() - started)
    return result


async def wait_for_cart(client: Client, token: str) -> None:
    """The cart appears once the cart service has consumed USER_CREATED."""
    deadline = time.monotonic() + CART_WAIT_S
    while True:
        try:
            await client.call("cart ready", "GET", "/carts/me", expect=200, token=token)
            return
        except StepFailed as exc:
            if exc.outcome != "404" or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.01)


async def checkout(client: Client, stats: LevelStats, product_id: int) -> None:
    number = next(_shopper_numbers)
    email = f"shopper{number}-{uuid.uuid4().hex[:8]}@bench.example"
    await timed(stats, "signup", client.call("signup", "POST", "/auth/signup", expect=201, json={
        "name": f"Shopper {number}", "email": email, "password": SHOPPER_PASSWORD}))
    login = await timed(stats, "login", client.call("login", "POST", "/auth/login", expect=200, json={
        "email": email, "password": SHOPPER_PASSWORD}))
    token = login["token"]
    await timed(stats, "cart ready", wait_for_cart(client, token))
    await timed(stats, "add to cart", client.call("add to cart", "POST", "/carts/me/items", expect=201,
                                                  token=token, json={"productId": product_id, "quantity": 1}))
    order = await timed(stats, "order", client.call("order", "POST", "/orders/me", expect=201, token=token,
                                                    json={"productId": product_id}))
    payment = await timed(stats, "pay", client.call(
        "pay", "POST", f"/payments/me/orders/{order['id']}/charge", expect=201, token=token,
        json={"provider": "stripe", "paymentToken": "tok_visa"}))
    if payment.get("status") != "succeeded":
        raise StepFailed("pay", f"payment {payment.get('status')}")
    final = await timed(stats, "read order", client.call("read order", "GET", f"/orders/{order['id']}",
                                                         expect=200, token=token))
    if final.get("status") != "paid":
        raise StepFailed("read order", f"order {final.get('status')}")


async def shopper(client: Client, stats: LevelStats, products: list[int], index: int,
                  stop_at: float, quota: Counter[str]) -> None:
    for n in itertools.count():
        if time.monotonic() >= stop_at or quota["left"] <= 0:
            return
        quota["left"] -= 1
        product_id = products[(index + n) % len(products)]
        started = time.perf_counter()
        try:
            await checkout(client, stats, product_id)
        except StepFailed as exc:
            stats.errors[(exc.step, exc.outcome)] += 1
            continue
        stats.checkout_s.append(time.perf_counter() - started)


async def run_level(client: Client, products: list[int], shoppers: int, seconds: float,
                    checkouts: int | None) -> LevelStats:
    stats = LevelStats(shoppers)
    quota: Counter[str] = Counter(left=checkouts if checkouts else 10**12)
    stop_at = time.monotonic() + (seconds if not checkouts else 24 * 3600)
    started = time.perf_counter()
    progress = asyncio.create_task(_progress(stats, started))
    try:
        await asyncio.gather(*(shopper(client, stats, products, i, stop_at, quota) for i in range(shoppers)))
    finally:
        progress.cancel()
    stats.elapsed_s = time.perf_counter() - started
    return stats


async def _progress(stats: LevelStats, started: float) -> None:
    while True:
        await asyncio.sleep(5)
        failed = sum(stats.errors.values())
        print(f"    ... {time.perf_counter() - started:5.1f}s  {stats.completed} checkouts done"
              f"{f', {failed} failed' if failed else ''}", flush=True)


# -- report ---------------------------------------------------------------------------------------
def percentiles_ms(samples: list[float]) -> tuple[float, float, float]:
    if not samples:
        return (float("nan"),) * 3
    if len(samples) == 1:
        return (samples[0] * 1000,) * 3
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[94] * 1000, cuts[98] * 1000


def print_level(stats: LevelStats) -> None:
    rate = stats.completed / stats.elapsed_s if stats.elapsed_s else 0.0
    p50, p95, p99 = percentiles_ms(stats.checkout_s)
    print(f"  shoppers={stats.shoppers}: {stats.completed} checkouts in {stats.elapsed_s:.1f}s = "
          f"{rate:.2f} checkouts/s; checkout p50 {p50:.0f} ms  p95 {p95:.0f} ms  p99 {p99:.0f} ms")
    print(f"      {'step':<12} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for step in STEPS:
        samples = stats.step_s.get(step, [])
        s50, s95, s99 = percentiles_ms(samples)
        print(f"      {step:<12} {len(samples):>6} {s50:8.1f} {s95:8.1f} {s99:8.1f}")
    if stats.errors:
        listed = ", ".join(f"{step} -> {outcome}: {n}" for (step, outcome), n in sorted(stats.errors.items()))
        print(f"      errors: {listed}")
    else:
        print("      errors: none")


def print_summary(levels: list[LevelStats], hash_cost: int) -> None:
    print(f"\nsummary (bcrypt cost {hash_cost}; 1 hash at signup + 1 at login per checkout)")
    print(f"{'shoppers':>8} {'checkouts':>9} {'per s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for stats in levels:
        p50, p95, p99 = percentiles_ms(stats.checkout_s)
        rate = stats.completed / stats.elapsed_s if stats.elapsed_s else 0.0
        print(f"{stats.shoppers:>8} {stats.completed:>9} {rate:>7.2f} {p50:>8.0f} {p95:>8.0f} {p99:>8.0f} "
              f"{sum(stats.errors.values()):>7}")


# -- main -----------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shoppers", default="1,8,32", help="concurrency levels, e.g. 1,8,32")
    parser.add_argument("--seconds", type=float, default=15.0, help="duration of each level (default 15)")
    parser.add_argument("--checkouts", type=int, default=None,
                        help="run each level for this many checkouts instead of --seconds")
    parser.add_argument("--hash-cost", type=int, default=10, help="bcrypt cost (PASSWORD_HASH_COST, default 10)")
    parser.add_argument("--products", type=int, default=20, help="products in the catalog (default 20)")
    parser.add_argument("--stock", type=int, default=1_000_000, help="units of each product (default 1e6)")
    parser.add_argument("--allow-errors", action="store_true", help="exit 0 even if checkouts failed")
    parser.add_argument("--deployment", choices=("all-in-one", "per-service"), default="all-in-one",
                        help="one dev process (default), or one serve process per service on Kafka + MariaDB")
    parser.add_argument("--mysql", default="127.0.0.1:3306", help="MariaDB for --deployment per-service")
    args = parser.parse_args(argv)
    try:
        args.shoppers = [int(s) for s in args.shoppers.split(",") if s.strip()]
    except ValueError:
        parser.error("--shoppers: comma-separated positive integers, e.g. 1,8,32")
    if not args.shoppers or min(args.shoppers) < 1:
        parser.error("--shoppers: comma-separated positive integers, e.g. 1,8,32")
    if not 4 <= args.hash_cost <= 16:
        parser.error("--hash-cost: 4..16")
    if args.seconds <= 0 or (args.checkouts is not None and args.checkouts < 1) or args.products < 1:
        parser.error("--seconds, --checkouts and --products must be positive")
    return args


async def main_async(args: argparse.Namespace) -> int:
    if args.deployment == "per-service":
        from deployment import Deployment  # bench/ is on sys.path when this file runs

        ports = free_ports(len(SERVICES) + 1)
        node: Any = Deployment(args.hash_cost, dict(zip(SERVICES, ports, strict=False)), mysql=args.mysql)
        node.start = functools.partial(node.start, ADMIN_EMAIL, ADMIN_PASSWORD, ports[-1])
    else:
        node = Node(args.hash_cost)
    levels: list[LevelStats] = []
    print(f"checkout load ({args.deployment}): bcrypt cost {args.hash_cost} (PASSWORD_HASH_COST), shoppers "
          f"{','.join(map(str, args.shoppers))}, each level "
          f"{f'{args.checkouts} checkouts' if args.checkouts else f'{args.seconds:g}s'}", flush=True)
    node.start()
    try:
        timeout = aiohttp.ClientTimeout(total=60)
        connector = aiohttp.TCPConnector(limit=max(args.shoppers) + 4)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            print(f"  starting the node (gateway {node.gateway}) ...", flush=True)
            await node.wait_ready(session)
            client = Client(session, node.gateway)
            print(f"  creating {args.products} products with {args.stock} units each ...", flush=True)
            try:
                products = await create_catalog(client, args.products, args.stock)
                await checkout(client, LevelStats(0), products[0])  # warm-up, not counted
            except StepFailed as exc:
                raise BenchFailed(f"setup failed at {exc}") from None
            for shoppers in args.shoppers:
                print(f"  level: {shoppers} shopper(s) ...", flush=True)
                stats = await run_level(client, products, shoppers, args.seconds, args.checkouts)
                print_level(stats)
                levels.append(stats)
                if stats.completed == 0:
                    raise BenchFailed(f"no checkout completed with {shoppers} shopper(s)")
        print_summary(levels, args.hash_cost)
        if args.deployment == "per-service":
            users, p50, p99 = node.event_lag_ms()
            print(f"USER_CREATED -> cart over Kafka ({users} users): p50 {p50:.1f} ms  p99 {p99:.1f} ms")
    finally:
        node.stop()
    failed = sum(sum(stats.errors.values()) for stats in levels)
    if failed and not args.allow_errors:
        print(f"checkout_load: FAILED: {failed} checkout(s) failed (see errors above)", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(main_async(args))
    except BenchFailed as exc:
        print(f"checkout_load: FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("checkout_load: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
