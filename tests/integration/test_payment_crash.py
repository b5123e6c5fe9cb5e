"""`kill -9` of a real `microcommerce dev` after the provider took the money, before the commit.

`tok_visa_slow` makes the mock provider answer SLOW_TOKEN_DELAY_S after it booked the charge in
its own books (`providers.sqlite` in the data dir). The process is killed in that window; after
a restart, reconciliation must find the charge, record it, and mark the order paid, and no
retry may charge again. (Two short-lived processes: this test takes a few seconds.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from mc_testkit import free_ports

from microcommerce.config import SERVICE_NAMES
from microcommerce.services.payment import books, store
from microcommerce.services.payment.providers import LEDGER_FILE, ProviderLedger
from microcommerce.storage import open_database

ROOT = Path(__file__).resolve().parents[2]
ADMIN = {"email": "ops@example.com", "password": "ops-password-1"}


class Dev:
    """`python -m microcommerce.cli dev --data-dir D` with this checkout's code."""

    def __init__(self, data_dir: Path, ports: list[int]) -> None:
        self.data_dir = data_dir
        self.gateway = f"http://127.0.0.1:{ports[0]}"
        self.env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
        self.env.update({f"{name.upper()}_PORT": str(port) for name, port in zip(SERVICE_NAMES, ports, strict=True)})
        self.env.update(PYTHONPATH=str(ROOT), PASSWORD_HASH_COST="4", JWT_SECRET="crash-test-secret-0123456789",
                        BOOTSTRAP_ADMIN_EMAIL=ADMIN["email"], BOOTSTRAP_ADMIN_PASSWORD=ADMIN["password"],
                        ACCESS_LOG="false", LOG_LEVEL="warning", RATE_LIMIT_MAX="100000")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = (self.data_dir.parent / "dev.log").open("a")
        self.proc = subprocess.Popen([sys.executable, "-m", "microcommerce.cli", "dev", "--data-dir", str(self.data_dir)],
                                     env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.data_dir.parent / "dev.log").read_text()
            try:
                if self.call("GET", "/health")[1].get("overall") == "up":
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("dev did not come up")

    def stop(self, sig: int = signal.SIGINT) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=15)

    def call(self, method: str, path: str, body: dict | None = None, token: str | None = None,
             headers: dict[str, str] | None = None, timeout: float = 10) -> tuple[int, dict]:
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.gateway + path, data=data, headers=all_headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def until(self, probe, timeout: float = 10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = probe()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {probe}")


def login(dev: Dev, email: str, password: str) -> str:
    status, body = dev.call("POST", "/auth/login", {"email": email, "password": password})
    assert status == 200, body
    return body["token"]


def pending_order(dev: Dev) -> tuple[str, dict]:
    admin = login(dev, ADMIN["email"], ADMIN["password"])
    status, category = dev.call("POST", "/categories", {"name": "Books"}, admin)
    assert status == 201, category
    status, product = dev.call("POST", "/products", {"categoryId": category["id"], "name": "Dune", "price": 12.5,
                                                     "stockQuantity": 5}, admin)
    assert status == 201, product
    dev.until(lambda: dev.call("GET", f"/inventory/{product['id']}")[0] == 200)
    status, _ = dev.call("POST", "/auth/signup", {"name": "Alice", "email": "alice@example.com",
                                                  "password": "correct-horse"})
    assert status == 201
    token = login(dev, "alice@example.com", "correct-horse")
    dev.until(lambda: dev.call("GET", "/carts/me", token=token)[0] == 200)
    assert dev.call("POST", "/carts/me/items", {"productId": product["id"], "quantity": 2}, token)[0] == 201
    status, order = dev.call("POST", "/orders/me", {"productId": product["id"]}, token)
    assert status == 201 and order["status"] == "pending", order
    return token, order


def payment_rows(data_dir: Path) -> list[dict]:
    import sqlite3

    with sqlite3.connect(data_dir / "payment.db") as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT id, status, idempotency_key FROM payments ORDER BY id")]


async def test_kill_9_between_the_providers_answer_and_the_commit(tmp_path):
    data_dir = tmp_path / "var"
    dev = Dev(data_dir, free_ports(len(SERVICE_NAMES)))
    dev.start()
    try:
        token, order = pending_order(dev)
        charge_path = f"/payments/me/orders/{order['id']}/charge"
        key = {"Idempotency-Key": "alice-pays-order-1"}
        request = {"paymentToken": "tok_visa_slow"}
        threading.Thread(target=lambda: _ignore_errors(dev.call, "POST", charge_path, request, token, key),
                         daemon=True).start()

        ledger = ProviderLedger(f"sqlite:///{data_dir / LEDGER_FILE}")
        try:
            [booked] = dev.until(ledger.charges)  # the provider has taken the money...
            dev.proc.send_signal(signal.SIGKILL)  # ...and the service dies before it hears so
            dev.proc.wait(timeout=10)
            assert [(r["status"], r["idempotency_key"]) for r in payment_rows(data_dir)] == [
                ("pending", booked.idempotencyKey)]  # the window was hit: only the attempt is recorded

            dev.start()  # reconciliation at start (reading payments settles nothing)
            [payment] = dev.until(lambda: _settled(dev.call("GET", "/payments/me", token=token)))
            assert (payment["status"], payment["providerPaymentId"]) == ("succeeded", booked.chargeId)
            assert payment["amount"] == order["totalAmount"] == 25.0
            dev.until(lambda: dev.call("GET", f"/orders/{order['id']}", token=token)[1].get("status") == "paid")

            # The client retries with its key: the payment that went through, nothing charged again.
            status, replay = dev.call("POST", charge_path, request, token, key)
            assert (status, replay) == (201, payment)
            status, again = dev.call("POST", charge_path, {"paymentToken": "tok_visa"}, token)
            assert status == 409 and again["message"] == "Order is already paid"
            assert [c.chargeId for c in ledger.charges()] == [booked.chargeId]
            db = open_database(f"sqlite:///{data_dir / 'payment.db'}")
            await db.connect()
            try:
                assert books.disagreements(ledger.charges(), ledger.refunds(), await store.booked(db)) == []
            finally:
                await db.close()
        finally:
            ledger.close()
        dev.stop()
        assert dev.proc.returncode == 0
    finally:
        dev.stop(signal.SIGKILL)


def _settled(reply: tuple[int, dict]) -> list[dict] | None:
    status, body = reply
    assert status == 200, body
    return body["payments"] if all(p["status"] != "pending" for p in body["payments"]) else None


def _ignore_errors(fn, *args) -> None:
    try:
        fn(*args)
    except OSError:
        pass  # the server was killed mid-request: that is the point
