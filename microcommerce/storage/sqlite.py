"""SQLite adapter (stdlib ``sqlite3``).

Every actor worker is a thread with its own asyncio loop, and all workers of a
service share its database. SQLite allows one writer at a time anyway, so the
process keeps ONE connection per database (shared by every ``SqliteDatabase``
on it) behind a ``threading.RLock``. Statements run synchronously inside the
async methods: they take microseconds, and blocking the calling worker's own
loop for that long is cheaper than a thread hop. A transaction holds the lock
from BEGIN to COMMIT/ROLLBACK, so other threads simply wait their turn (hence:
never wait for another worker inside a transaction; it may be waiting for you).

Tasks of one loop share a thread, so the RLock cannot keep them apart: a
per-loop ``asyncio.Lock`` (the "gate") does that, letting other tasks of a
worker wait without blocking their loop while one of them is in a transaction.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from microcommerce.errors import InvalidInput

from .port import (
    Database,
    DatabaseUnavailable,
    ExecResult,
    IntegrityError,
    Row,
    StorageError,
    TransientError,
)
from .urls import SqliteTarget

log = logging.getLogger(__name__)

_BUSY_TIMEOUT_MS = 5000  # only matters when another process writes the same file


class _Gate:
    """Serialises the tasks of one event loop; ``owner`` is the task inside a transaction."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.owner: asyncio.Task[Any] | None = None


class _Shared:
    """The process-wide connection for one database, with its lock and user count."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.lock = threading.RLock()
        self.refs = 0
        self._gates: dict[asyncio.AbstractEventLoop, _Gate] = {}
        self._gates_lock = threading.Lock()

    def gate(self) -> _Gate:
        loop = asyncio.get_running_loop()
        with self._gates_lock:
            gate = self._gates.get(loop)
            if gate is None:
                # Forget the gates of workers whose loops have ended.
                self._gates = {lp: g for lp, g in self._gates.items() if not lp.is_closed()}
                gate = self._gates[loop] = _Gate()
            return gate


_registry: dict[str, _Shared] = {}
_registry_lock = threading.Lock()


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> Row:
    return {col[0]: value for col, value in zip(cursor.description, row, strict=True)}


def _open(target: SqliteTarget) -> sqlite3.Connection:
    # isolation_level=None: the sqlite3 module must not open transactions behind our back.
    if target.path is None:
        conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
    else:
        target.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(target.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")  # readers in other processes don't block the writer
        conn.execute("PRAGMA synchronous=NORMAL")  # safe with WAL, much faster commits
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    conn.row_factory = _dict_row
    return conn


@contextmanager
def _mapped_errors() -> Iterator[None]:
    try:
        yield
    except OverflowError:  # binding an int beyond 64 bits: the value is at fault, not the code
        raise InvalidInput("A number in the request is out of range") from None
    except sqlite3.IntegrityError as exc:
        raise IntegrityError(f"constraint violated: {exc}") from exc
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):  # another process held the file past busy_timeout
            raise TransientError(f"sqlite busy: {exc}") from exc
        raise StorageError(f"sqlite error: {exc}") from exc
    except sqlite3.Error as exc:
        raise StorageError(f"sqlite error: {exc}") from exc


def _fetch_one(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> Row | None:
    return conn.execute(sql, params).fetchone()


def _fetch_all(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Row]:
    return conn.execute(sql, params).fetchall()


def _execute(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> ExecResult:
    cur = conn.execute(sql, params)
    rowcount = max(cur.rowcount, 0)  # DDL reports -1
    # sqlite3 leaves a stale lastrowid after UPDATE or an ignored INSERT; MySQL reports none.
    inserted = rowcount > 0 and sql.lstrip()[:7].upper().startswith(("INSERT", "REPLACE"))
    return ExecResult(rowcount, cur.lastrowid if inserted else None)


def _execute_many(conn: sqlite3.Connection, sql: str, rows: Sequence[Sequence[Any]]) -> ExecResult:
    return ExecResult(max(conn.executemany(sql, rows).rowcount, 0), None)


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back without masking the exception that got us here."""
    try:
        if conn.in_transaction:  # a failed COMMIT may have ended it already
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        log.exception("sqlite rollback failed")


class _SqliteExecutor:
    """The Executor methods; subclasses decide how to get exclusive use of the connection."""

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        raise NotImplementedError

    async def fetch_one(self, sql: str, *params: Any) -> Row | None:
        return await self._run(_fetch_one, sql, params)

    async def fetch_all(self, sql: str, *params: Any) -> list[Row]:
        return await self._run(_fetch_all, sql, params)

    async def execute(self, sql: str, *params: Any) -> ExecResult:
        return await self._run(_execute, sql, params)

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> ExecResult:
        return await self._run(_execute_many, sql, rows)


class _Transaction(_SqliteExecutor):
    """The Executor handed out by ``transaction()``; its owner already holds the lock."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn: sqlite3.Connection | None = conn

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._conn is None:
            raise StorageError("transaction already finished")
        with _mapped_errors():
            return fn(self._conn, *args)


class SqliteDatabase(_SqliteExecutor, Database):
    dialect = "sqlite"

    def __init__(self, url: str, target: SqliteTarget) -> None:
        self.url = url
        self._target = target
        self._shared: _Shared | None = None

    async def connect(self) -> None:
        if self._shared is not None:
            return
        key = self._target.key
        with _registry_lock:
            shared = _registry.get(key)
            if shared is None:
                try:
                    shared = _Shared(_open(self._target))
                except (sqlite3.Error, OSError) as exc:
                    where = self._target.path or "memory"
                    raise DatabaseUnavailable(
                        f"cannot open sqlite database {where}: {exc}"
                    ) from exc
                _registry[key] = shared
                log.debug("opened sqlite database %s", key)
            shared.refs += 1
        self._shared = shared

    async def close(self) -> None:
        shared, self._shared = self._shared, None
        if shared is None:
            return
        with _registry_lock:
            shared.refs -= 1
            if shared.refs > 0:
                return
            del _registry[self._target.key]
        # Outside the registry lock: waiting here for a running statement must not stall connect().
        with shared.lock:
            shared.conn.close()
        log.debug("closed sqlite database %s", self._target.key)

    def _connected(self) -> _Shared:
        if self._shared is None:
            raise StorageError("database is not connected; call connect() first")
        return self._shared

    def _gate(self, shared: _Shared) -> _Gate:
        gate = shared.gate()
        if gate.owner is not None and gate.owner is asyncio.current_task():
            # Waiting for the gate would deadlock on ourselves; the single connection
            # cannot run the statement outside the transaction either.
            raise StorageError("inside a transaction, use the executor yielded by transaction()")
        return gate

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        shared = self._connected()
        async with self._gate(shared).lock:
            with shared.lock, _mapped_errors():
                return fn(shared.conn, *args)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Transaction]:
        shared = self._connected()
        gate = self._gate(shared)
        async with gate.lock:
            gate.owner = asyncio.current_task()
            try:
                with shared.lock:
                    with _mapped_errors():
                        # IMMEDIATE takes the write lock now, so a transaction never
                        # fails half-way with SQLITE_BUSY when it first writes.
                        shared.conn.execute("BEGIN IMMEDIATE")
                    tx = _Transaction(shared.conn)
                    try:
                        yield tx
                        with _mapped_errors():
                            shared.conn.execute("COMMIT")
                    except BaseException:
                        _rollback(shared.conn)
                        raise
                    finally:
                        tx._conn = None
            finally:
                gate.owner = None

    async def ping(self) -> bool:
        try:
            return await self.fetch_one("SELECT 1 AS ok") is not None
        except Exception:
            return False
