"""The `microcommerce` command as a user runs it: help, one-line errors, create-admin, migrate, dev."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from mc_testkit import free_ports, start_platform, stop_platform

from microcommerce.config import SERVICE_NAMES

ROOT = Path(__file__).resolve().parents[2]
CLI = str(ROOT / ".venv" / "bin" / "microcommerce")
SUBCOMMANDS = ["dev", "serve", "migrate", "create-admin"]


def clean_env(**extra: str) -> dict[str, str]:
    """Only what a shell needs: no stray settings from the test runner's environment."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(extra)
    return env


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=timeout,
                          env=env or clean_env(), cwd=ROOT)


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# -- help and argument errors ------------------------------------------------------------------------


@pytest.mark.parametrize("subcommand", ["", *SUBCOMMANDS])
def test_help_of_each_subcommand_exits_0(subcommand):
    proc = run(*([subcommand] if subcommand else []), "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: microcommerce")
    assert proc.stderr == ""


def test_top_level_help_lists_the_subcommands():
    out = run("--help").stdout
    for subcommand in SUBCOMMANDS:
        assert subcommand in out


@pytest.mark.parametrize(("args", "needle"), [
    (["dev", "--bogus"], "unrecognized arguments: --bogus"),
    (["frobnicate"], "invalid choice"),
    ([], "required"),
    (["create-admin", "--password", "password123"], "--email"),
    (["serve"], "--service"),
    (["serve", "--service", "user", "--port", "eighty"], "--port"),
    (["dev", "--log-level", "loud"], "--log-level"),
])
def test_a_bad_flag_prints_one_line_and_exits_2(args, needle):
    assert_one_line_error(run(*args), 2, "microcommerce: error:", needle)


# -- configuration errors -------------------------------------------------------------------------------


def test_bad_environment_value_is_one_line(tmp_path):
    proc = run("migrate", "--data-dir", str(tmp_path), env=clean_env(RATE_LIMIT_MAX="abc"))
    assert_one_line_error(proc, 1, "config error", "RATE_LIMIT_MAX")


def test_unknown_key_in_the_config_file_is_one_line(tmp_path):
    config = tmp_path / "mc.toml"
    config.write_text("workers = 2\nwrokers = 3\n")
    proc = run("migrate", "--config", str(config), "--data-dir", str(tmp_path))
    assert_one_line_error(proc, 1, "config error", "wrokers")


def test_missing_config_file_is_one_line(tmp_path):
    proc = run("migrate", "--config", str(tmp_path / "nope.toml"))
    assert_one_line_error(proc, 1, "file not found")


@pytest.mark.parametrize(("args", "needle"), [
    (["serve", "--service", "basket"], "unknown service(s) basket"),
    (["serve", "--service", "user,cart", "--port", "4000"], "--port"),
    (["serve", "--service", "user", "--bus", "kafka://127.0.0.1:9092"], "JWT_SECRET and INTERNAL_TOKEN: required"),
    (["migrate", "--db", "ftp://example.com/db"], "DATABASE_URL"),
])
def test_bad_deployment_choices_are_one_line(args, needle):
    assert_one_line_error(run(*args, "--log-level", "warning"), 1, needle)


def test_a_database_password_is_never_printed():
    proc = run("migrate", "--service", "user", "--log-level", "warning",
               "--db", "mysql://root:s3cret-pw@127.0.0.1:1/mc_{service}")
    assert proc.returncode == 1
    assert "s3cret-pw" not in proc.stdout + proc.stderr
    assert "mysql://root:***@127.0.0.1:1/mc_user" in proc.stdout
    assert "Traceback" not in proc.stderr


# -- create-admin and migrate -----------------------------------------------------------------------------


def test_create_admin_then_migrate(tmp_path):
    data = str(tmp_path / "var")
    created = run("create-admin", "--email", "Root@Example.com", "--password", "admin-pass-1",
                  "--name", "Root", "--data-dir", data, "--log-level", "warning")
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "admin Root@Example.com created"
    again = run("create-admin", "--email", "root@example.com", "--password", "admin-pass-1",
                "--data-dir", data, "--log-level", "warning")
    assert again.returncode == 0 and "already admin" in again.stdout

    migrated = run("migrate", "--data-dir", data, "--log-level", "warning")
    assert migrated.returncode == 0, migrated.stderr
    assert "user: up to date" in migrated.stdout  # create-admin already migrated the user database
    assert "cart: applied" in migrated.stdout
    assert (tmp_path / "var" / "user.db").exists()
    rerun = run("migrate", "--data-dir", data, "--log-level", "warning")
    assert "applied" not in rerun.stdout  # idempotent


async def test_the_created_admin_can_log_in(tmp_path, make_platform):
    data = str(tmp_path / "var")
    assert run("create-admin", "--email", "boss@example.com", "--password", "boss-pass-1",
               "--data-dir", data, "--log-level", "warning").returncode == 0
    platform = await make_platform(["gateway", "user"], ephemeral=False, data_dir=data)
    token = await platform.login("boss@example.com", "boss-pass-1")
    session = await platform.get("/auth/session", token=token)
    assert session.body["user"]["role"] == "admin"


async def test_create_admin_promotes_an_existing_account(tmp_path):
    data = str(tmp_path / "var")
    platform = await start_platform(["gateway", "user"], ephemeral=False, data_dir=data)
    try:
        user = await platform.signup(email="later-boss@example.com", password="password-1")
        assert user["role"] == "user"
    finally:
        await stop_platform(platform)

    proc = run("create-admin", "--email", "later-boss@example.com", "--password", "ignored-pass",
               "--data-dir", data, "--log-level", "warning")
    assert proc.returncode == 0 and "promoted" in proc.stdout

    platform = await start_platform(["gateway", "user"], ephemeral=False, data_dir=data)
    try:
        token = await platform.login("later-boss@example.com", "password-1")  # password kept
        session = await platform.get("/auth/session", token=token)
        assert session.body["user"]["role"] == "admin"
    finally:
        await stop_platform(platform)


@pytest.mark.parametrize(("email", "password", "needle"), [
    ("not-an-email", "password-123", "email"),
    ("a@b", "password-123", "email"),
    ("ok@example.com", "short", "--password"),
])
def test_create_admin_rejects_bad_input_in_one_line(tmp_path, email, password, needle):
    proc = run("create-admin", "--email", email, "--password", password, "--data-dir", str(tmp_path),
               "--log-level", "warning")
    assert_one_line_error(proc, 1, needle)
    assert not (tmp_path / "user.db").exists() or email == "ok@example.com"


# -- dev ---------------------------------------------------------------------------------------------------------


def port_env(ports: list[int]) -> dict[str, str]:
    return {f"{name.upper()}_PORT": str(port) for name, port in zip(SERVICE_NAMES, ports, strict=True)}


def http_json(url: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def wait_until_up(gateway: str, proc: subprocess.Popen, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"dev exited early: {proc.stderr.read() if proc.stderr else ''}"
        try:
            status, body = http_json(f"{gateway}/health")
            if status == 200 and body.get("overall") == "up":
                return body
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise AssertionError("dev did not come up in time")


@pytest.fixture
def dev_process():
    started: list[subprocess.Popen] = []

    def start(env: dict[str, str], *args: str) -> subprocess.Popen:
        proc = subprocess.Popen([CLI, "dev", *args], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_dev_ephemeral_serves_and_stops_cleanly_on_sigint(dev_process):
    ports = free_ports(len(SERVICE_NAMES))
    env = clean_env(**port_env(ports), PASSWORD_HASH_COST="4", BOOTSTRAP_ADMIN_EMAIL="ops@example.com",
                    BOOTSTRAP_ADMIN_PASSWORD="ops-password-1", ACCESS_LOG="false", LOG_LEVEL="warning")
    proc = dev_process(env, "--ephemeral")
    gateway = f"http://127.0.0.1:{ports[0]}"

    health = wait_until_up(gateway, proc)
    assert health["service"] == "gateway"
    assert set(health["checks"]["services"].values()) == {"up"}
    status, body = http_json(f"{gateway}/auth/login", {"email": "ops@example.com", "password": "ops-password-1"})
    assert status == 200 and body["token"]

    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=10)  # stops within a few seconds or the test fails
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "MicroCommerce is up" in stdout
    assert f"gateway       http://127.0.0.1:{ports[0]}" in stdout
    assert "(from BOOTSTRAP_ADMIN_PASSWORD)" in stdout and "ops-password-1" not in stdout
    assert stdout.rstrip().endswith("stopped")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", ports[0]), timeout=1).close()


def test_dev_generates_an_admin_once_and_keeps_data_between_runs(dev_process, tmp_path):
    ports = free_ports(len(SERVICE_NAMES))
    env = clean_env(**port_env(ports), PASSWORD_HASH_COST="4", ACCESS_LOG="false", LOG_LEVEL="warning")
    gateway = f"http://127.0.0.1:{ports[0]}"
    data = str(tmp_path / "var")

    first = dev_process(env, "--data-dir", data)
    wait_until_up(gateway, first)
    first.send_signal(signal.SIGTERM)
    stdout, _ = first.communicate(timeout=10)
    assert first.returncode == 0
    email, password = admin_from_banner(stdout)
    assert email == "admin@microcommerce.local" and len(password) >= 12

    second = dev_process(env, "--data-dir", data)
    wait_until_up(gateway, second)
    status, _ = http_json(f"{gateway}/auth/login", {"email": email, "password": password})
    assert status == 200  # the account from the first run survived in the data dir
    second.send_signal(signal.SIGINT)
    stdout, _ = second.communicate(timeout=10)
    assert second.returncode == 0
    assert admin_from_banner(stdout) == (email, "(existing account: password unchanged)")


def admin_from_banner(stdout: str) -> tuple[str, str]:
    banner = next(line for line in stdout.splitlines() if "bootstrap admin:" in line)
    email, password = banner.split("bootstrap admin:")[1].split("password:")
    return email.strip(), password.strip()


def test_dev_with_a_busy_port_fails_in_one_line(dev_process):
    ports = free_ports(len(SERVICE_NAMES))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", ports[1]))  # the user service's port
        busy.listen()
        env = clean_env(**port_env(ports), PASSWORD_HASH_COST="4", LOG_LEVEL="warning")
        proc = dev_process(env, "--ephemeral")
        stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and str(ports[1]) in lines[0] and "another instance" in lines[0]
