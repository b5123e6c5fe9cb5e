"""One behaviour suite for every storage adapter: the port must mean the same thing on each."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pymysql
import pytest

from microcommerce.storage import (
    Database,
    DatabaseUnavailable,
    ExecResult,
    Executor,
    IntegrityError,
    StorageError,
    migrate,
    open_database,
)
from microcommerce.storage.migrations import render

ITEMS = """-- items: a unique name, optional note; exercises {{text}} and {{pk}}
CREATE TABLE items (
    id {{pk}},
    name VARCHAR(100) NOT NULL UNIQUE,
    note {{text}},
    qty INTEGER
);
"""
STOCK = """CREATE TABLE stock (
    id INTEGER PRIMARY KEY,
    total INTEGER NOT NULL,
    reserved INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE events (id {{pk}}, payload {{json}});
"""
RESERVE = "UPDATE stock SET reserved = reserved + ? WHERE id = ? AND total - reserved >= ?"


@pytest.fixture(params=["sqlite-memory", "sqlite-file", "mysql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite-memory":
        return f"sqlite://memory/{uuid.uuid4().hex}"
    if request.param == "sqlite-file":
        return f"sqlite:///{tmp_path}/nested/dir/app.db"  # parent dirs don't exist yet
    return request.getfixturevalue("mysql_db_url")


@pytest.fixture
def schema_dir(tmp_path: Path) -> Path:
    path = tmp_path / "schema"
    path.mkdir()
    (path / "0001_items.sql").write_text(ITEMS)
    (path / "0002_stock.sql").write_text(STOCK)
    return path


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = open_database(db_url)
    await database.connect()
    await database.connect()  # idempotent
    yield database
    await database.close()


@pytest.fixture
async def tables(db: Database, schema_dir: Path) -> Database:
    await migrate(db, schema_dir)
    return db


async def count(ex: Executor, table: str) -> int:
    row = await ex.fetch_one(f"SELECT COUNT(*) AS n FROM {table}")
    assert row is not None
    return int(row["n"])


def run_in_threads(n: int, worker: Callable[[int], Awaitable[Any]]) -> list[Any]:
    """Run ``worker(i)`` in n threads, each with its own event loop (as actor workers do)."""
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            results[i] = asyncio.run(worker(i))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "worker thread hung"
    if errors:
        raise errors[0]
    return results


# --- the shared suite ------------------------------------------------------------


async def test_database_satisfies_the_port(db: Database) -> None:
    assert isinstance(db, Database)
    assert db.dialect in ("sqlite", "mysql")
    assert await db.ping() is True
    async with db.transaction() as tx:
        assert isinstance(tx, Executor)


async def test_crud(tables: Database) -> None:
    db = tables
    first = await db.execute("INSERT INTO items (name, qty) VALUES (?, ?)", "apple", 3)
    second = await db.execute("INSERT INTO items (name, qty) VALUES (?, ?)", "pear", 5)
    assert first.rowcount == 1 and second.rowcount == 1
    assert first.lastrowid is not None and second.lastrowid == first.lastrowid + 1

    row = await db.fetch_one("SELECT id, name, qty FROM items WHERE id = ?", first.lastrowid)
    assert row == {"id": first.lastrowid, "name": "apple", "qty": 3}
    assert await db.fetch_one("SELECT id FROM items WHERE id = ?", 999_999) is None

    updated = await db.execute("UPDATE items SET qty = qty + ? WHERE name = ?", 10, "pear")
    assert updated == ExecResult(rowcount=1, lastrowid=None)
    rows = await db.fetch_all("SELECT name, qty FROM items ORDER BY name")
    assert rows == [{"name": "apple", "qty": 3}, {"name": "pear", "qty": 15}]

    deleted = await db.execute("DELETE FROM items WHERE name = ?", "apple")
    assert deleted.rowcount == 1
    assert await db.fetch_all("SELECT name FROM items WHERE name = ?", "apple") == []


async def test_placeholders_nulls_and_percent(tables: Database) -> None:
    db = tables
    await db.execute(
        "INSERT INTO items (name, note, qty) VALUES (?, ?, ?)", "100% cotton", None, None
    )
    await db.execute(
        "INSERT INTO items (name, note) VALUES (?, ?)", "50? questions", 'it\'s "quoted"'
    )
    row = await db.fetch_one("SELECT name, note, qty FROM items WHERE note IS NULL")
    assert row == {"name": "100% cotton", "note": None, "qty": None}
    # A literal % in the SQL text and one in a parameter both survive the MySQL rewrite.
    assert await db.fetch_all("SELECT name FROM items WHERE name LIKE '100%'") == [
        {"name": "100% cotton"}
    ]
    rows = await db.fetch_all("SELECT note FROM items WHERE name LIKE ?", "50%")
    assert rows == [{"note": 'it\'s "quoted"'}]


async def test_rowcount_and_lastrowid(tables: Database) -> None:
    db = tables
    many = await db.execute_many(
        "INSERT INTO items (name, qty) VALUES (?, ?)", [("a", 1), ("b", 1), ("c", 2)]
    )
    assert many == ExecResult(rowcount=3, lastrowid=None)
    assert await db.execute_many("INSERT INTO items (name) VALUES (?)", []) == ExecResult(0, None)
    assert (await db.execute("UPDATE items SET qty = 0 WHERE qty = ?", 1)).rowcount == 2
    assert (await db.execute("UPDATE items SET qty = 0 WHERE name = ?", "nope")).rowcount == 0
    # Matched-but-unchanged rows count as on SQLite (MySQL would say 0 without FOUND_ROWS).
    assert (await db.execute("UPDATE items SET qty = 2 WHERE name = ?", "c")).rowcount == 1
    deleted = await db.execute("DELETE FROM items")
    assert deleted == ExecResult(rowcount=3, lastrowid=None)


async def test_transaction_commits(tables: Database) -> None:
    async with tables.transaction() as tx:
        await tx.execute("INSERT INTO items (name) VALUES (?)", "x")
        await tx.execute("INSERT INTO items (name) VALUES (?)", "y")
        assert await count(tx, "items") == 2  # own writes are visible inside
    assert await count(tables, "items") == 2


async def test_transaction_rolls_back_on_exception(tables: Database) -> None:
    with pytest.raises(ZeroDivisionError):
        async with tables.transaction() as tx:
            await tx.execute("INSERT INTO items (name) VALUES (?)", "x")
            await tx.execute("INSERT INTO stock (id, total) VALUES (?, ?)", 1, 10)
            1 / 0  # noqa: B018
    assert await count(tables, "items") == 0
    assert await count(tables, "stock") == 0
    with pytest.raises(StorageError, match="finished"):
        await tx.execute("INSERT INTO items (name) VALUES (?)", "late")
    assert await tables.ping() is True  # the connection is usable afterwards


async def test_insert_or_ignore(tables: Database) -> None:
    sql = "INSERT OR IGNORE INTO items (name, qty) VALUES (?, ?)"
    first = await tables.execute(sql, "dup", 1)
    again = await tables.execute(sql, "dup", 2)
    assert first.rowcount == 1 and first.lastrowid is not None
    assert again == ExecResult(rowcount=0, lastrowid=None)
    assert await tables.fetch_all("SELECT qty FROM items") == [{"qty": 1}]


async def test_unique_violation_raises_integrity_error(tables: Database) -> None:
    await tables.execute("INSERT INTO items (name) VALUES (?)", "taken")
    with pytest.raises(IntegrityError):
        await tables.execute("INSERT INTO items (name) VALUES (?)", "taken")
    with pytest.raises(IntegrityError):
        async with tables.transaction() as tx:
            await tx.execute("INSERT INTO items (name) VALUES (?)", "fresh")
            await tx.execute("INSERT INTO items (name) VALUES (?)", "taken")
    assert await tables.fetch_all("SELECT name FROM items") == [{"name": "taken"}]


async def test_conditional_update_rowcount(tables: Database) -> None:
    await tables.execute("INSERT INTO stock (id, total) VALUES (?, ?)", 1, 5)
    assert (await tables.execute(RESERVE, 3, 1, 3)).rowcount == 1
    assert (await tables.execute(RESERVE, 3, 1, 3)).rowcount == 0  # only 2 left
    assert (await tables.execute(RESERVE, 2, 1, 2)).rowcount == 1
    assert await tables.fetch_one("SELECT reserved FROM stock WHERE id = ?", 1) == {"reserved": 5}


async def test_migrations_apply_once_and_record_versions(db: Database, schema_dir: Path) -> None:
    assert await migrate(db, schema_dir) == ["0001_items", "0002_stock"]
    assert await migrate(db, schema_dir) == []
    (schema_dir / "0003_more.sql").write_text("ALTER TABLE items ADD COLUMN price INTEGER;\n")
    assert await migrate(db, schema_dir) == ["0003_more"]
    assert await migrate(db, schema_dir) == []

    rows = await db.fetch_all(
        "SELECT version, name, applied_at FROM schema_migrations ORDER BY version"
    )
    assert [(r["version"], r["name"]) for r in rows] == [
        (1, "0001_items"),
        (2, "0002_stock"),
        (3, "0003_more"),
    ]
    assert all(r["applied_at"].endswith("+00:00") for r in rows)
    await db.execute("INSERT INTO items (name, price) VALUES (?, ?)", "priced", 7)
    await db.execute("INSERT INTO events (payload) VALUES (?)", '{"big": "' + "x" * 70_000 + '"}')


async def test_failed_migration_is_not_recorded(db: Database, schema_dir: Path) -> None:
    (schema_dir / "0003_broken.sql").write_text(
        "CREATE TABLE oops (id INTEGER PRIMARY KEY);\nNOT SQL;\n"
    )
    with pytest.raises(StorageError, match="0003_broken"):
        await migrate(db, schema_dir)
    versions = await db.fetch_all("SELECT version FROM schema_migrations ORDER BY version")
    assert versions == [{"version": 1}, {"version": 2}]


async def test_concurrent_migrate_applies_each_migration_once(
    db: Database, db_url: str, schema_dir: Path
) -> None:
    async def worker(_: int) -> list[str]:
        own = open_database(db_url)
        await own.connect()
        try:
            # Two tasks of this loop race each other, too.
            results = await asyncio.gather(migrate(own, schema_dir), migrate(own, schema_dir))
            return [name for names in results for name in names]
        finally:
            await own.close()

    results = await asyncio.to_thread(run_in_threads, 2, worker)
    assert sorted(name for names in results for name in names) == ["0001_items", "0002_stock"]
    assert await count(db, "schema_migrations") == 2


async def test_threads_with_own_loops_share_the_database(tables: Database, db_url: str) -> None:
    """Actor workers: each thread opens its own Database on the URL and its own loop."""
    await tables.execute("INSERT INTO stock (id, total) VALUES (?, ?)", 1, 50)

    async def worker(w: int) -> int:
        own = open_database(db_url)
        await own.connect()

        async def reserve(task: int) -> int:
            won = 0
            for n in range(15):
                async with own.transaction() as tx:
                    if (await tx.execute(RESERVE, 1, 1, 1)).rowcount:
                        await tx.execute("INSERT INTO items (name) VALUES (?)", f"{w}-{task}-{n}")
                        won += 1
                    await asyncio.sleep(0)  # let the loop's other tasks try to interleave
                await own.execute("INSERT INTO events (payload) VALUES (?)", f"{w}-{task}-{n}")
            return won

        try:
            return sum(await asyncio.gather(*(reserve(t) for t in range(3))))
        finally:
            await own.close()

    won = await asyncio.to_thread(run_in_threads, 2, worker)
    assert sum(won) == 50  # 90 attempts, exactly the stock was sold, never more
    assert await tables.fetch_one("SELECT reserved FROM stock WHERE id = ?", 1) == {"reserved": 50}
    assert await count(tables, "items") == 50
    assert await count(tables, "events") == 90


async def test_gathered_transactions_on_one_loop_are_isolated(tables: Database) -> None:
    async def one(i: int) -> None:
        async with tables.transaction() as tx:
            await tx.execute("INSERT INTO items (name) VALUES (?)", f"n{i}")
            await asyncio.sleep(0)
            if i % 2:
                raise ValueError(i)

    results = await asyncio.gather(*(one(i) for i in range(10)), return_exceptions=True)
    assert sum(isinstance(r, ValueError) for r in results) == 5
    assert await count(tables, "items") == 5


async def test_use_before_connect_and_after_close(db_url: str) -> None:
    db = open_database(db_url)
    with pytest.raises(StorageError, match="not connected"):
        await db.fetch_one("SELECT 1 AS one")
    assert await db.ping() is False
    await db.connect()
    assert await db.fetch_one("SELECT 1 AS one") == {"one": 1}
    await db.close()
    await db.close()  # harmless
    assert await db.ping() is False


# --- adapter specifics -------------------------------------------------------------


async def test_sqlite_databases_on_one_url_share_data_until_last_close() -> None:
    url = f"sqlite://memory/{uuid.uuid4().hex}"
    a, b = open_database(url), open_database(url)
    await a.connect()
    await b.connect()
    await a.execute("CREATE TABLE t (v INTEGER)")
    await a.execute("INSERT INTO t (v) VALUES (?)", 1)
    assert await b.fetch_all("SELECT v FROM t") == [{"v": 1}]
    await a.close()
    assert await b.fetch_all("SELECT v FROM t") == [{"v": 1}]  # still alive for b
    await b.close()
    c = open_database(url)
    await c.connect()
    with pytest.raises(StorageError, match="no such table"):
        await c.fetch_all("SELECT v FROM t")  # the last close dropped it
    await c.close()


async def test_sqlite_database_call_inside_own_transaction_is_refused() -> None:
    db = open_database("sqlite:///:memory:")
    await db.connect()
    try:
        async with db.transaction():
            with pytest.raises(StorageError, match="use the executor"):
                await db.fetch_one("SELECT 1 AS one")
    finally:
        await db.close()


async def test_mysql_creates_missing_database(mysql_server_url: str) -> None:
    name = f"mctest_auto_{uuid.uuid4().hex[:12]}"
    db = open_database(f"{mysql_server_url}/{name}?pool_size=2")
    try:
        await db.connect()
        assert await db.fetch_one("SELECT DATABASE() AS db") == {"db": name}
        await db.close()
    finally:
        with pymysql.connect(host="127.0.0.1", user="root") as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


async def test_mysql_unreachable_server_is_reported(unused_tcp_port: int) -> None:
    db = open_database(f"mysql://root@127.0.0.1:{unused_tcp_port}/nothing")
    assert await db.ping() is False
    with pytest.raises(DatabaseUnavailable, match=f"127.0.0.1:{unused_tcp_port}"):
        await db.connect()


def test_render_substitutes_tokens_per_dialect() -> None:
    sqlite = render(ITEMS + STOCK, "sqlite")
    mysql = render(ITEMS + STOCK, "mysql")
    assert len(sqlite) == len(mysql) == 3
    assert "id INTEGER PRIMARY KEY AUTOINCREMENT" in sqlite[0]
    assert "id BIGINT PRIMARY KEY AUTO_INCREMENT" in mysql[0]
    assert "payload TEXT" in sqlite[2] and "payload LONGTEXT" in mysql[2]
    assert all(s.endswith("ENGINE=InnoDB DEFAULT CHARSET=utf8mb4") for s in mysql)
    assert not any("ENGINE" in s for s in sqlite)
    with pytest.raises(StorageError, match="unknown migration token"):
        render("CREATE TABLE t (x {{uuid}})", "sqlite")
