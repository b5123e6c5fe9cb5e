"""The storage port: the only database interface services code against.

SQL is written once, with ``?`` placeholders, and runs unchanged on every
adapter (the adapters translate what differs). Rows come back as plain dicts
so callers never depend on a driver's row type.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, runtime_checkable

import msgspec

Row = dict[str, Any]


class ExecResult(msgspec.Struct, frozen=True):
    """Outcome of a write. ``lastrowid`` is set only when an INSERT created a row."""

    rowcount: int
    lastrowid: int | None = None


class StorageError(Exception):
    """Base of every error the storage layer raises; the message never holds credentials."""


class IntegrityError(StorageError):
    """A unique, foreign-key or NOT NULL constraint rejected the statement."""


class TransientError(StorageError):
    """The transaction lost a race (deadlock, lock wait timeout); it was rolled back, so
    running the whole unit of work again is safe."""


class DatabaseUnavailable(StorageError):
    """The database cannot be reached, or the connection was lost mid-statement."""


@runtime_checkable
class Executor(Protocol):
    """Something that runs SQL: a database, or one open transaction of it."""

    async def fetch_one(self, sql: str, *params: Any) -> Row | None: ...

    async def fetch_all(self, sql: str, *params: Any) -> list[Row]: ...

    async def execute(self, sql: str, *params: Any) -> ExecResult: ...

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> ExecResult: ...


@runtime_checkable
class Database(Executor, Protocol):
    """A database handle. Plain statements autocommit; use ``transaction()`` to group them.

    Actor workers each run their own thread and asyncio loop: give each worker its
    own ``Database`` (``open_database`` on the same URL), ``connect()`` it inside the
    worker's loop and ``close()`` it there when the worker stops.
    """

    dialect: str  # "sqlite" | "mysql"
    url: str

    async def connect(self) -> None:
        """Open connections (idempotent); statements before this raise StorageError."""
        ...

    async def close(self) -> None: ...

    def transaction(self) -> AbstractAsyncContextManager[Executor]:
        """Yield an Executor in one transaction: commit on normal exit, roll back on exception."""
        ...

    async def ping(self) -> bool:
        """True if a trivial query succeeds; False (never raises) otherwise."""
        ...
