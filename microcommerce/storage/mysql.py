"""MySQL/MariaDB adapter (aiomysql).

aiomysql pools belong to the event loop that created them, and every actor
worker runs its own loop, so the adapter keeps one pool per loop, created there
by ``connect()`` (or, once connected, by the first statement on that loop).
Plain statements autocommit on any pooled connection; a transaction pins one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiomysql
import pymysql
from pymysql.constants import CLIENT

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
from .urls import MysqlTarget

log = logging.getLogger(__name__)

_CONNECTION_ERRORS = {2003, 2006, 2013, 2055}  # can't connect, gone away, lost (twice)
_TRANSIENT_ERRORS = {1205, 1213}  # lock wait timeout, deadlock: InnoDB rolled the work back
# The value itself is refused (strict mode): out of range, truncated, wrong kind, too long.
_BAD_VALUE_ERRORS = {1264: "A number in the request is out of range",
                     1265: "A value in the request does not fit",
                     1292: "A value in the request has the wrong format",
                     1366: "A value in the request has the wrong format",
                     1406: "A value in the request is too long",
                     1690: "A number in the request is out of range"}
_CONNECT_TIMEOUT_S = 10
# Strict mode: bad data is an error, never a silently truncated value plus a warning.
_SQL_MODE = "TRADITIONAL"
_INSERT_OR_IGNORE = re.compile(r"^(\s*)INSERT\s+OR\s+IGNORE\b", re.IGNORECASE)
_SQL_CACHE_MAX = 4096
_sql_cache: dict[str, str] = {}


def to_mysql(sql: str) -> str:
    """Translate portable SQL to pymysql's dialect (cached: the same strings recur constantly).

    ``?`` becomes ``%s``; literal ``%`` is doubled because pymysql %-formats the
    query (we always pass a params tuple, even an empty one, so it always does).
    """
    out = _sql_cache.get(sql)
    if out is None:
        out = sql.replace("%", "%%").replace("?", "%s")
        out = _INSERT_OR_IGNORE.sub(r"\1INSERT IGNORE", out, count=1)
        if len(_sql_cache) >= _SQL_CACHE_MAX:  # generated SQL (IN lists) must not grow it forever
            _sql_cache.clear()
        _sql_cache[sql] = out
    return out


def _detail(exc: BaseException) -> str:
    args = getattr(exc, "args", ())
    return str(args[1]) if len(args) > 1 else str(exc)


@contextlib.contextmanager
def _mapped_errors(address: str) -> Iterator[None]:
    try:
        yield
    except pymysql.err.Error as exc:
        code = exc.args[0] if exc.args else None
        if isinstance(exc, pymysql.err.IntegrityError):
            raise IntegrityError(f"constraint violated: {_detail(exc)}") from exc
        if code in _BAD_VALUE_ERRORS:  # whatever class pymysql files it under
            raise InvalidInput(_BAD_VALUE_ERRORS[code]) from exc
        if isinstance(exc, pymysql.err.OperationalError) and code in _TRANSIENT_ERRORS:
            raise TransientError(f"transaction lost a race: {_detail(exc)}") from exc
        if isinstance(exc, pymysql.err.OperationalError) and code in _CONNECTION_ERRORS:
            raise DatabaseUnavailable(f"MySQL at {address} is unavailable: {_detail(exc)}") from exc
        raise StorageError(f"mysql error: {_detail(exc)}") from exc
    except OverflowError:  # an int the driver cannot send: the value is at fault, not the code
        raise InvalidInput("A number in the request is out of range") from None
    except OSError as exc:
        raise DatabaseUnavailable(f"MySQL at {address} is unavailable: {exc}") from exc


class _Cursor(aiomysql.DictCursor):
    """Rows as dicts, and no ``warnings.warn`` per server warning.

    The warnings we get are expected (a duplicate skipped by INSERT IGNORE, an
    IF NOT EXISTS that found the object) and strict sql_mode turns real ones
    into errors, so skip the extra SHOW WARNINGS round trip.
    """

    async def _show_warnings(self, conn: aiomysql.Connection) -> None:
        log.debug("mysql statement produced %d warning(s)", self._result.warning_count)


class _MysqlExecutor:
    """The Executor methods; subclasses say where the cursor's connection comes from."""

    def _cursor(self) -> contextlib.AbstractAsyncContextManager[_Cursor]:
        raise NotImplementedError

    async def fetch_one(self, sql: str, *params: Any) -> Row | None:
        async with self._cursor() as cur:
            await cur.execute(to_mysql(sql), params)
            return await cur.fetchone()

    async def fetch_all(self, sql: str, *params: Any) -> list[Row]:
        async with self._cursor() as cur:
            await cur.execute(to_mysql(sql), params)
            return list(await cur.fetchall())

    async def execute(self, sql: str, *params: Any) -> ExecResult:
        async with self._cursor() as cur:
            await cur.execute(to_mysql(sql), params)
            return ExecResult(max(cur.rowcount, 0), cur.lastrowid or None)

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> ExecResult:
        if not rows:  # aiomysql returns without touching rowcount
            return ExecResult(0, None)
        async with self._cursor() as cur:
            await cur.executemany(to_mysql(sql), [tuple(row) for row in rows])
            return ExecResult(max(cur.rowcount, 0), None)


class _Transaction(_MysqlExecutor):
    """The Executor handed out by ``transaction()``: every statement on one connection."""

    def __init__(self, conn: aiomysql.Connection, address: str) -> None:
        self._conn: aiomysql.Connection | None = conn
        self._address = address
        # One connection can't interleave statements of tasks gathered inside the transaction.
        self._busy = asyncio.Lock()

    @asynccontextmanager
    async def _cursor(self) -> AsyncIterator[_Cursor]:
        async with self._busy:
            if self._conn is None:
                raise StorageError("transaction already finished")
            with _mapped_errors(self._address):
                async with self._conn.cursor() as cur:
                    yield cur


class MysqlDatabase(_MysqlExecutor, Database):
    dialect = "mysql"

    def __init__(self, url: str, target: MysqlTarget) -> None:
        self.url = url
        self._target = target
        self._open = False
        self._database_created = False
        self._pools: dict[asyncio.AbstractEventLoop, aiomysql.Pool] = {}
        self._pools_lock = threading.Lock()  # workers' threads add their pools concurrently

    @property
    def database(self) -> str:
        return self._target.database

    def _connection_args(self, db: str | None) -> dict[str, Any]:
        t = self._target
        return dict(
            host=t.host, port=t.port, user=t.user, password=t.password, db=db,
            charset="utf8mb4", autocommit=True, cursorclass=_Cursor, sql_mode=_SQL_MODE,
            connect_timeout=_CONNECT_TIMEOUT_S,
            # rowcount = rows matched, as on SQLite; the conditional UPDATE relies on it.
            client_flag=CLIENT.FOUND_ROWS,
        )  # fmt: skip

    @contextlib.contextmanager
    def _connecting(self) -> Iterator[None]:
        try:
            yield
        except (pymysql.err.Error, OSError) as exc:
            raise DatabaseUnavailable(
                f"cannot connect to MySQL at {self._target.address}: {_detail(exc)}"
            ) from exc

    async def _raw_connect(self, db: str | None) -> aiomysql.Connection:
        with self._connecting():
            return await aiomysql.connect(**self._connection_args(db))

    async def _create_database(self) -> None:
        # Connect without a database first: the pool's connections need it to exist.
        await self._on_server(f"CREATE DATABASE IF NOT EXISTS `{self._target.database}` CHARACTER SET utf8mb4")

    async def drop(self) -> None:
        """Drop the whole database (a harness run's fresh one, once it has been read)."""
        await self._on_server(f"DROP DATABASE IF EXISTS `{self._target.database}`")

    async def _on_server(self, sql: str) -> None:
        """One statement on a connection to the server, outside any database."""
        conn = await self._raw_connect(db=None)
        try:
            with _mapped_errors(self._target.address):
                async with conn.cursor() as cur:
                    await cur.execute(sql)
        finally:
            await _quietly_close(conn)

    async def connect(self) -> None:
        if not self._database_created:
            await self._create_database()
            self._database_created = True
        self._open = True
        await self._pool()  # create this loop's pool now, so connection errors surface here

    async def _pool(self) -> aiomysql.Pool:
        if not self._open:
            raise StorageError("database is not connected; call connect() first")
        loop = asyncio.get_running_loop()
        with self._pools_lock:
            pool = self._pools.get(loop)
        if pool is not None:
            return pool
        with self._connecting():
            pool = await aiomysql.create_pool(
                minsize=1,
                maxsize=self._target.pool_size,
                pool_recycle=3600,
                **self._connection_args(self._target.database),
            )
        with self._pools_lock:
            # Forget pools of workers whose loops ended without close().
            self._pools = {lp: p for lp, p in self._pools.items() if not lp.is_closed()}
            winner = self._pools.setdefault(loop, pool)
        if winner is not pool:  # another task of this loop got there first
            pool.close()
            await pool.wait_closed()
        return winner

    async def close(self) -> None:
        self._open = False
        current = asyncio.get_running_loop()
        with self._pools_lock:
            pools, self._pools = self._pools, {}
        for loop, pool in pools.items():
            if loop is current:
                pool.close()
                await pool.wait_closed()
            elif not loop.is_closed():
                # A pool can only be closed on its own loop; don't wait for it.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(pool.close)

    @asynccontextmanager
    async def _cursor(self) -> AsyncIterator[_Cursor]:
        pool = await self._pool()
        with _mapped_errors(self._target.address):
            async with pool.acquire() as conn, conn.cursor() as cur:
                yield cur

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Transaction]:
        pool = await self._pool()
        address = self._target.address
        with _mapped_errors(address):
            conn = await pool.acquire()
        tx = _Transaction(conn, address)
        try:
            with _mapped_errors(address):
                await conn.begin()
            try:
                yield tx
                with _mapped_errors(address):
                    await conn.commit()
            except BaseException:
                await _rollback(conn)
                raise
        finally:
            tx._conn = None
            pool.release(conn)  # the pool discards it if it is closed or still in a transaction

    async def ping(self) -> bool:
        try:
            return await self.fetch_one("SELECT 1 AS ok") is not None
        except Exception:
            return False

    @asynccontextmanager
    async def named_lock(self, name: str, timeout_s: int = 30) -> AsyncIterator[None]:
        """Hold ``GET_LOCK(name)``: exclusive across all processes using this server.

        Uses its own connection, so holding it never starves the pool; closing that
        connection releases the lock even if we die half-way.
        """
        conn = await self._raw_connect(db=self._target.database)
        try:
            with _mapped_errors(self._target.address):
                async with conn.cursor() as cur:
                    await cur.execute("SELECT GET_LOCK(%s, %s) AS got", (name, timeout_s))
                    row = await cur.fetchone()
            if row["got"] != 1:
                raise StorageError(f"timed out after {timeout_s}s waiting for lock {name!r}")
            yield
        finally:
            await _quietly_close(conn)


async def _rollback(conn: aiomysql.Connection) -> None:
    """Roll back without masking the exception that got us here."""
    try:
        await conn.rollback()
    except Exception:
        log.warning("mysql rollback failed; dropping the connection", exc_info=True)
        conn.close()


async def _quietly_close(conn: aiomysql.Connection) -> None:
    try:
        await conn.ensure_closed()  # polite COM_QUIT so the server releases locks at once
    except Exception:
        conn.close()
