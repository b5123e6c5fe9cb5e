"""Revoked tokens stay refused after `kill -9` and a restart of the real `microcommerce dev`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from mc_testkit import free_ports

from microcommerce.config import SERVICE_NAMES

ROOT = Path(__file__).resolve().parents[2]
SECRET = "a-fixed-jwt-secret-for-this-test"
ADMIN = {"email": "ops@example.com", "password": "ops-password-1"}
PASSWORD = "password123"


def http(method: str, url: str, *, token: str | None = None, body: dict | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


class Dev:
    """`microcommerce dev --data-dir` in a subprocess, running this checkout's code."""

    def __init__(self, data_dir: Path) -> None:
        ports = free_ports(len(SERVICE_NAMES))
        self.urls = {name: f"http://127.0.0.1:{port}" for name, port in zip(SERVICE_NAMES, ports, strict=True)}
        self.env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
        self.env.update({f"{name.upper()}_PORT": str(port) for name, port in zip(SERVICE_NAMES, ports, strict=True)})
        self.env.update(PYTHONPATH=str(ROOT), JWT_SECRET=SECRET, PASSWORD_HASH_COST="4", ACCESS_LOG="false",
                        LOG_LEVEL="warning", BOOTSTRAP_ADMIN_EMAIL=ADMIN["email"],
                        BOOTSTRAP_ADMIN_PASSWORD=ADMIN["password"])
        self.data_dir = data_dir
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "microcommerce.cli", "dev", "--data-dir",
                                      str(self.data_dir)], env=self.env, cwd=ROOT,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"dev exited: {self.proc.stderr.read() if self.proc.stderr else ''}"
            try:
                if http("GET", self.urls["gateway"] + "/health")[1].get("overall") == "up":
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise AssertionError("dev did not come up in time")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # SIGKILL: no shutdown hook runs
            self.proc.wait(timeout=10)

    def call(self, method: str, path: str, *, via: str = "gateway", token: str | None = None,
             body: dict | None = None) -> tuple[int, dict]:
        return http(method, self.urls[via] + path, token=token, body=body)

    def signup_and_login(self, name: str) -> tuple[int, str]:
        email = f"{name}@example.com"
        status, user = self.call("POST", "/auth/signup", body={"name": name, "email": email, "password": PASSWORD})
        assert status == 201, user
        return user["id"], self.login(email)

    def login(self, email: str, password: str = PASSWORD) -> str:
        status, body = self.call("POST", "/auth/login", body={"email": email, "password": password})
        assert status == 200, body
        return body["token"]


@pytest.fixture
def dev(tmp_path):
    process = Dev(tmp_path / "var")
    yield process
    process.kill()


def assert_refused_everywhere(dev: Dev, revoked: dict[str, str]) -> None:
    for who, token in revoked.items():
        for via, path in (("gateway", "/auth/session"), ("user", "/auth/session"),
                          ("gateway", "/carts/me"), ("cart", "/carts/me"), ("order", "/orders/me")):
            status, body = dev.call("GET", path, via=via, token=token)
            assert status == 401, (who, via, path, status, body)


def test_revoked_tokens_stay_refused_after_kill_9_and_restart(dev):
    dev.start()
    admin = dev.login(ADMIN["email"], ADMIN["password"])
    blocked_id, blocked = dev.signup_and_login("blocked")
    deleted_id, deleted = dev.signup_and_login("deleted")
    _, changed = dev.signup_and_login("changed")
    _, logged_out = dev.signup_and_login("loggedout")
    control_id, control = dev.signup_and_login("control")
    status, demoted_user = dev.call("POST", "/users", token=admin, body={
        "name": "demoted", "email": "demoted@example.com", "password": PASSWORD, "role": "admin"})
    assert status == 201
    demoted = dev.login("demoted@example.com")

    assert dev.call("PUT", f"/users/{blocked_id}", token=admin, body={"accountStatus": "blocked"})[0] == 200
    assert dev.call("DELETE", f"/users/{deleted_id}", token=admin)[0] == 200
    assert dev.call("POST", "/auth/reset-password", token=changed,
                    body={"oldPassword": PASSWORD, "newPassword": "password456"})[0] == 200
    assert dev.call("PUT", f"/users/{demoted_user['id']}", token=admin, body={"role": "user"})[0] == 200
    assert dev.call("POST", "/auth/logout", token=logged_out)[0] == 200
    revoked = {"blocked": blocked, "deleted": deleted, "changed": changed, "demoted": demoted,
               "logged out": logged_out}
    assert_refused_everywhere(dev, revoked)

    dev.kill()
    dev.start()

    assert_refused_everywhere(dev, revoked)
    promote = {"role": "admin"}
    for via in ("gateway", "user"):
        status, _ = dev.call("PUT", f"/users/{control_id}", via=via, token=demoted, body=promote)
        assert status == 401
    assert dev.call("GET", "/auth/session", token=control)[0] == 200  # untouched tokens survive too
    assert dev.call("GET", "/auth/session", token=admin)[0] == 200

    # New logins work, with what the users are now.
    assert dev.call("GET", "/auth/session", token=dev.login("changed@example.com", "password456"))[0] == 200
    assert dev.call("GET", "/auth/session", token=dev.login("loggedout@example.com"))[0] == 200
    now_user = dev.login("demoted@example.com")
    assert dev.call("PUT", f"/users/{control_id}", token=now_user, body=promote)[0] == 403
    assert dev.call("POST", "/auth/login", body={"email": "blocked@example.com", "password": PASSWORD})[0] == 403
    assert dev.call("POST", "/auth/login", body={"email": "deleted@example.com", "password": PASSWORD})[0] == 401
