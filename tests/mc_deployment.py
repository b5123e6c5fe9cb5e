"""Test kit for the per-service deployment: every service its own `microcommerce serve` process,
on MariaDB (one database each) and a Kafka-protocol broker, talking over HTTP and Kafka."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pymysql
from mc_process import CLI, ROOT, call, clean_env
from mc_testkit import free_ports

from microcommerce.config import SERVICE_NAMES

ADMIN = {"email": "ops@example.com", "password": "ops-password-1"}


@dataclass
class ServiceProcess:
    service: str
    port: int
    proc: subprocess.Popen
    log: Path


@dataclass
class Deployment:
    """Ten processes (or more: replicas) of one deployment; `stop()` ends them and drops the databases."""

    bus_url: str
    mysql_url: str
    log_dir: Path
    run: str = field(default_factory=lambda: f"mcdep_{uuid.uuid4().hex[:8]}")
    processes: list[ServiceProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ports = dict(zip(SERVICE_NAMES, free_ports(len(SERVICE_NAMES)), strict=True))
        self.env = clean_env(
            **{f"{name.upper()}_PORT": str(port) for name, port in self.ports.items()},
            **{f"{name.upper()}_SERVICE_URL": f"http://127.0.0.1:{port}" for name, port in self.ports.items()},
            DATABASE_URL=f"{self.mysql_url}/{self.run}_{{service}}", BUS_URL=self.bus_url,
            JWT_SECRET="deployment-test-secret-0123456789", INTERNAL_TOKEN="deployment-internal-token",
            PASSWORD_HASH_COST="4", BOOTSTRAP_ADMIN_EMAIL=ADMIN["email"],
            BOOTSTRAP_ADMIN_PASSWORD=ADMIN["password"], ACCESS_LOG="false", LOG_LEVEL="warning",
            RATE_LIMIT_MAX="1000000", OUTBOX_POLL_MS="200", WORKERS="2",
            KAFKA_SESSION_TIMEOUT_MS="6000", KAFKA_HEARTBEAT_INTERVAL_MS="1000",
            KAFKA_MAX_POLL_INTERVAL_MS="10000", DATA_DIR=str(self.log_dir / "data"))  # the provider ledger

    def url(self, service: str = "gateway", port: int | None = None) -> str:
        return f"http://127.0.0.1:{port or self.ports[service]}"

    def start(self, service: str, *, port: int | None = None, **env: str) -> ServiceProcess:
        port = port or self.ports[service]
        log = self.log_dir / f"{service}-{port}.log"
        with log.open("a") as out:
            proc = subprocess.Popen([*CLI, "serve", "--service", service, "--port", str(port)],
                                    env={**self.env, **env}, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        started = ServiceProcess(service, port, proc, log)
        self.processes.append(started)
        return started

    def start_all(self) -> None:
        for service in SERVICE_NAMES:
            self.start(service)

    async def wait_healthy(self, *processes: ServiceProcess, timeout: float = 90) -> None:
        pending = list(processes or self.processes)
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while pending:
                for process in list(pending):
                    assert process.proc.poll() is None, \
                        f"{process.service} exited:\n{process.log.read_text()[-3000:]}"
                    try:
                        async with session.get(self.url(port=process.port) + "/health") as resp:
                            if resp.status == 200:
                                pending.remove(process)
                    except (aiohttp.ClientError, TimeoutError):
                        pass
                if time.monotonic() > deadline:
                    logs = "\n".join(f"--- {p.service}\n{p.log.read_text()[-1500:]}" for p in pending)
                    raise AssertionError(f"not healthy in time: {[p.service for p in pending]}\n{logs}")
                await asyncio.sleep(0.2)

    def kill9(self, process: ServiceProcess) -> None:
        process.proc.kill()
        process.proc.wait(timeout=10)
        self.processes.remove(process)

    def process_of(self, service: str) -> ServiceProcess:
        return next(p for p in self.processes if p.service == service)

    def stop(self) -> None:
        for process in self.processes:
            if process.proc.poll() is None:
                process.proc.terminate()
        for process in self.processes:
            try:
                process.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.proc.kill()
                process.proc.wait(timeout=10)
        self.processes.clear()
        self.drop_databases()

    def drop_databases(self) -> None:
        conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW DATABASES LIKE %s", (f"{self.run}\\_%",))
                for (name,) in cur.fetchall():
                    cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        finally:
            conn.close()


class Client:
    """A shopper or an admin talking to the gateway."""

    def __init__(self, deployment: Deployment, session: aiohttp.ClientSession) -> None:
        self.deployment = deployment
        self.session = session

    async def call(self, method: str, path: str, *, token: str | None = None, json: Any = None,
                   service: str = "gateway") -> tuple[int, Any]:
        return await call(self.session, method, self.deployment.url(service) + path, token=token, json=json)

    async def login(self, email: str, password: str) -> str:
        status, body = await self.call("POST", "/auth/login", json={"email": email, "password": password})
        assert status == 200, body
        return body["token"]

    async def admin(self) -> str:
        return await self.login(ADMIN["email"], ADMIN["password"])
