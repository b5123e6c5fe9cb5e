"""Database URL parsing: accepted forms and the errors for everything else."""

from __future__ import annotations

from pathlib import Path

import pytest

from microcommerce.storage import open_database
from microcommerce.storage.urls import MysqlTarget, SqliteTarget, parse_database_url


def test_sqlite_file_paths_relative_and_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    relative = parse_database_url("sqlite:///data/app.db")
    absolute = parse_database_url(f"sqlite:///{tmp_path}/data/app.db")
    assert (
        relative
        == absolute
        == SqliteTarget(tmp_path / "data" / "app.db", f"file:{tmp_path}/data/app.db")
    )


def test_sqlite_memory_forms() -> None:
    assert parse_database_url("sqlite:///:memory:") == SqliteTarget(None, "memory:")
    assert parse_database_url("sqlite://memory/orders") == SqliteTarget(None, "memory:orders")


def test_mysql_full_and_defaults() -> None:
    full = parse_database_url("mysql://shop:p%40ss@db.local:3307/orders?pool_size=9")
    assert full == MysqlTarget("db.local", 3307, "shop", "orders", 9, password="p@ss")
    assert "p@ss" not in repr(full)
    assert parse_database_url("mysql://root@127.0.0.1/orders", pool_size=2) == MysqlTarget(
        "127.0.0.1", 3306, "root", "orders", 2
    )


def test_open_database_picks_the_adapter_without_connecting() -> None:
    assert open_database("sqlite:///:memory:").dialect == "sqlite"
    db = open_database("mysql://root@127.0.0.1:1/orders")
    assert (db.dialect, db.url) == ("mysql", "mysql://root@127.0.0.1:1/orders")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgres://u@h/db", "scheme must be one of sqlite://, mysql://"),
        ("orders.db", "scheme must be one of"),
        ("", "scheme must be one of"),
        ("sqlite://", "expected sqlite:///<path>"),
        ("sqlite://relative.db", "expected sqlite:///<path>"),
        ("sqlite:///", "missing file path"),
        ("sqlite:///app.db?mode=ro", "no query parameters"),
        ("sqlite://memory/", "expected sqlite://memory/<name>"),
        ("sqlite://memory/a/b", "expected sqlite://memory/<name>"),
        ("mysql://u@h:notaport/db", "port must be a number"),
        ("mysql://u@h:70000/db", "port must be a number"),
        ("mysql://u@h:0/db", "port must be a number"),
        ("mysql://u@/db", "missing host"),
        ("mysql://h:3306/db", "missing user"),
        ("mysql://u@h:3306", "missing database name"),
        ("mysql://u@h:3306/", "missing database name"),
        ("mysql://u@h/my-db", "database name may only contain"),
        ("mysql://u@h/db`; DROP", "database name may only contain"),
        ("mysql://u@h/db?pool_size=0", "pool_size must be a positive integer"),
        ("mysql://u@h/db?pool_size=many", "pool_size must be a positive integer"),
        ("mysql://u@h/db?charset=latin1", "unknown parameter(s) charset"),
    ],
)
def test_bad_urls_raise_value_error_with_reason(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match="bad database URL") as info:
        parse_database_url(url)
    assert reason in str(info.value)
    with pytest.raises(ValueError, match="bad database URL"):
        open_database(url)


def test_error_message_hides_the_password() -> None:
    with pytest.raises(ValueError) as info:
        parse_database_url("mysql://shop:s3cret@db.local:3306/")
    assert "s3cret" not in str(info.value)
    assert "db.local:3306" in str(info.value)
