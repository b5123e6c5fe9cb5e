"""Shared pytest fixtures."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

# --- MariaDB -----------------------------------------------------------------
# Integration tests run against a real MariaDB on 127.0.0.1:3306 (root, no
# password). It is never skipped: if it can't be made available, the run fails.

ROOT = Path(__file__).resolve().parents[1]
MYSQL_HOST, MYSQL_PORT, MYSQL_USER = "127.0.0.1", 3306, "root"


def _mysql_admin() -> pymysql.Connection:
    return pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, autocommit=True)


@pytest.fixture(scope="session")
def mysql_server_url() -> str:
    """Start MariaDB if needed (once per session) and return the server URL, without a database."""
    script = ROOT / "scripts" / "ensure_mariadb.sh"
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"MariaDB unavailable: {(proc.stderr or proc.stdout).strip()}", pytrace=False)
    try:
        _mysql_admin().close()
    except pymysql.err.Error as exc:
        pytest.fail(f"MariaDB is up but refuses {MYSQL_USER}@{MYSQL_HOST}: {exc}", pytrace=False)
    return f"mysql://{MYSQL_USER}@{MYSQL_HOST}:{MYSQL_PORT}"


@pytest.fixture
def mysql_db_url(mysql_server_url: str) -> Iterator[str]:
    """URL of a fresh, uniquely named database (``mctest_*``), dropped after the test."""
    name = f"mctest_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    with _mysql_admin() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield f"{mysql_server_url}/{name}"
    finally:
        with _mysql_admin() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


# --- Platforms -----------------------------------------------------------------
# A platform is a real Node (actors, in-memory SQLite, local bus) serving real ports.

from mc_testkit import Platform, start_platform, stop_platform  # noqa: E402

from microcommerce.services import implemented_services  # noqa: E402


@pytest.fixture
async def make_platform():
    """Factory: `await make_platform(["gateway", "user"], rate_limit_max=5)`; stopped after the test."""
    started: list[Platform] = []

    async def make(services: list[str] | None = None, **overrides) -> Platform:
        platform = await start_platform(services or implemented_services(), **overrides)
        started.append(platform)
        return platform

    yield make
    for platform in started:
        await stop_platform(platform)


@pytest.fixture
async def platform(make_platform) -> Platform:
    """Every implemented service, behind the gateway."""
    return await make_platform()


@pytest.fixture
def mysql_database_template(mysql_server_url: str) -> Iterator[str]:
    """A `database_url` for platforms on MariaDB: one `mctest_<unique>_<service>` per service,
    all dropped after the test."""
    prefix = f"mctest_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    yield f"{mysql_server_url}/{prefix}_{{service}}"
    with _mysql_admin() as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE %s", (f"{prefix}\\_%",))
        for (name,) in cur.fetchall():
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


# --- Kafka -----------------------------------------------------------------------
# `kafka_broker`: a real Tansu broker for the session (tests/kafka_broker.py); never skipped.

from kafka_broker import kafka_broker  # noqa: E402, F401 - a fixture, registered by import
