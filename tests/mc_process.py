"""Test kit for the real `microcommerce` program in a subprocess: start, wait until up, kill -9."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from mc_testkit import free_ports

from microcommerce.config import SERVICE_NAMES

ROOT = Path(__file__).resolve().parents[1]
# This checkout's code, whichever installation runs the tests (a worktree has no .venv of its own).
CLI = [sys.executable, "-m", "microcommerce.cli"]


def clean_env(**extra: str) -> dict[str, str]:
    """Only what a shell needs: no stray settings from the test runner's environment."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


class DevProcess:
    """`microcommerce dev` on free ports with a fixed secret, restartable on the same data dir."""

    def __init__(self, data_dir: Path, **env: str) -> None:
        self.ports = dict(zip(SERVICE_NAMES, free_ports(len(SERVICE_NAMES)), strict=True))
        self.data_dir = data_dir
        self.env = clean_env(
            **{f"{name.upper()}_PORT": str(port) for name, port in self.ports.items()},
            PASSWORD_HASH_COST="4", JWT_SECRET="crash-test-secret-0123456789",
            INTERNAL_TOKEN="crash-test-internal-token", BOOTSTRAP_ADMIN_EMAIL="ops@example.com",
            BOOTSTRAP_ADMIN_PASSWORD="ops-password-1", ACCESS_LOG="false", LOG_LEVEL="error",
            RATE_LIMIT_MAX="1000000", OUTBOX_POLL_MS="200", **env)
        self.proc: subprocess.Popen | None = None
        self.log = data_dir / "dev.log"

    def url(self, service: str = "gateway") -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def start(self, *args: str) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("a") as log:
            self.proc = subprocess.Popen([*CLI, "dev", "--data-dir", str(self.data_dir), *args], env=self.env,
                                         cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    async def wait_until_up(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                assert self.proc is not None and self.proc.poll() is None, \
                    f"dev exited early:\n{self.log.read_text()[-3000:]}"
                try:
                    async with session.get(self.url() + "/health") as resp:
                        if resp.status == 200 and (await resp.json())["overall"] == "up":
                            return
                except (aiohttp.ClientError, ValueError):
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"dev did not come up in time:\n{self.log.read_text()[-3000:]}")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


async def call(session: aiohttp.ClientSession, method: str, url: str, *, token: str | None = None,
               json: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with session.request(method, url, json=json, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)
