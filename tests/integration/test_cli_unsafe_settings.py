"""The real CLI in a subprocess refuses unsafe settings with one line and a non-zero exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mc_testkit import free_ports

ROOT = Path(__file__).resolve().parents[2]


def cli_env(**settings: str) -> dict[str, str]:
    """This checkout's code, and no stray settings from the test runner's environment."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
    env.update(PYTHONPATH=str(ROOT), PASSWORD_HASH_COST="4", LOG_LEVEL="warning", ACCESS_LOG="false", **settings)
    return env


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "microcommerce.cli", *args]


def run(*args: str, **settings: str) -> subprocess.CompletedProcess:
    return subprocess.run(cli(*args), capture_output=True, text=True, timeout=60, env=cli_env(**settings),
                          cwd=ROOT)


def one_line_config_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("microcommerce: config error: "), lines[0]
    return lines[0].removeprefix("microcommerce: config error: ")


@pytest.mark.parametrize(("args", "settings"), [
    (["dev", "--ephemeral"], {"HOST": "0.0.0.0"}),
    (["serve", "--service", "user", "--host", "192.0.2.10"], {}),
])
def test_the_dev_profile_will_not_start_on_a_public_interface(args, settings):
    error = one_line_config_error(run(*args, **settings))
    assert error.startswith("HOST: the dev profile must not listen on "), error
    assert "PROFILE=production" in error and "ALLOW_DEV_ON_PUBLIC_HOST" in error


def test_a_runtime_breaking_setting_is_one_line():
    # Every range has a unit test (tests/unit/test_config_ranges.py); this is the user's view.
    error = one_line_config_error(run("dev", "--ephemeral", EVENT_MAX_ATTEMPTS="0"))
    assert error == "EVENT_MAX_ATTEMPTS: must be >= 1 (0 would dead-letter every event)"


def test_the_explicit_override_lets_dev_listen_on_all_interfaces():
    (port,) = free_ports(1)
    proc = subprocess.Popen(cli("dev", "--ephemeral", "--services", "user"), cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=cli_env(HOST="0.0.0.0", ALLOW_DEV_ON_PUBLIC_HOST="true", USER_PORT=str(port)))
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "dev did not come up"
                time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
