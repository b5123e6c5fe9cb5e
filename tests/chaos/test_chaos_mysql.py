"""`microcommerce chaos --db mysql://…/{service}` runs the same harness on MariaDB: fresh
databases per run, dropped after a valid run and kept (and named) after an invalid one."""

from __future__ import annotations

import asyncio
import uuid

import pymysql
import pytest

from microcommerce.chaos.faults import FaultPlan
from microcommerce.chaos.report import summary
from microcommerce.chaos.runner import RunConfig, RunResult, run_chaos
from microcommerce.services.order import domain as order_domain


def run_on_mysql(server_url: str, seed: int, families: tuple[str, ...]) -> tuple[RunResult, RunConfig, str]:
    prefix = f"mctest_chaos_{uuid.uuid4().hex[:8]}"
    config = RunConfig(seed=seed, duration=3.0, shoppers=5, families=families,
                       db_url=f"{server_url}/{prefix}_{{service}}")
    plan = FaultPlan(seed, families, rates={"db": 0.1} if "db" in families else None)
    return asyncio.run(run_chaos(config, progress=None, plan=plan)), config, prefix


def databases_named(prefix: str) -> list[str]:
    with pymysql.connect(host="127.0.0.1", user="root", autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE %s", (f"{prefix}%",))
        return sorted(row[0] for row in cur.fetchall())


def drop(names: list[str]) -> None:
    with pymysql.connect(host="127.0.0.1", user="root", autocommit=True) as conn, conn.cursor() as cur:
        for name in names:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


def test_a_run_on_mysql_with_db_faults_is_valid_and_leaves_no_databases(mysql_server_url: str) -> None:
    result, _, prefix = run_on_mysql(mysql_server_url, seed=31, families=("db", "crash"))
    left = databases_named(prefix)
    drop(left)
    assert result.faults["db"] > 0 and result.ops["ok"] > 20, (result.faults, result.ops)
    assert result.valid is True, result.checkers
    assert left == [] and result.kept_databases == []


def test_an_invalid_run_on_mysql_keeps_its_databases_and_names_them(mysql_server_url: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # Caught whenever an order has a line of two or more units: no race needed.
    monkeypatch.setattr(order_domain, "total_cents", lambda lines: sum(line.unit_price_cents for line in lines))
    result, config, prefix = run_on_mysql(mysql_server_url, seed=18, families=())
    left = databases_named(prefix)
    drop(left)
    assert result.checkers["lifecycle"]["valid"] is False, result.checkers
    assert sorted(result.kept_databases) == left and f"{prefix}_inventory_chaos_" in " ".join(left)
    assert "kept" in summary(result, config, "out") and left[0] in summary(result, config, "out")
