"""Faults in the storage adapter: a transaction fails at begin, mid-way or at commit.

`FaultyDatabase` wraps the real adapter (`open_database(url)`) and fails a transaction with
`TransientError` (a deadlock: rolled back, the worker reruns the handler up to 3 times) or
`DatabaseUnavailable` (a lost connection: the worker crashes and the supervisor restarts it).
A failure at begin, mid-way (on the first write) or at commit happens before the real commit,
which therefore never happens; "after-commit" is the nasty case of a connection lost while
the COMMIT's answer was on its way: the change is in, the caller is told it failed.

Only transactions a handler runs are faulted (on a worker thread, for the worker's own
service): migrations, a worker's start-up and the outbox relay run untouched.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

from microcommerce.storage import (
    Database,
    DatabaseUnavailable,
    ExecResult,
    Executor,
    TransientError,
    open_database,
)
from microcommerce.storage.port import Row

from .runtime_faults import current_service

if TYPE_CHECKING:
    from .faults import FaultPlan

POINTS = ("begin", "mid", "commit", "after-commit")


class FaultyDatabaseFactory:
    """The `database_factory` seam: each service's database, with fault points."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._opened: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, service: str, url: str) -> Database:
        with self._lock:
            first, _ = service not in self._opened, self._opened.add(service)
        if first:
            # A service's first database runs its migrations (ActorSystem.migrate): the real
            # adapter, so MySQL's migration lock (which checks the adapter's type) still applies.
            return open_database(url)
        return FaultyDatabase(open_database(url), self.plan, service)


class FaultyDatabase:
    def __init__(self, inner: Database, plan: FaultPlan, service: str) -> None:
        self.inner = inner
        self.plan = plan
        self.service = service
        self.dialect = inner.dialect
        self.url = inner.url

    def __getattr__(self, name: str) -> Any:  # adapter extras (e.g. MySQL's named_lock)
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    async def connect(self) -> None:
        await self.inner.connect()

    async def close(self) -> None:
        await self.inner.close()

    async def ping(self) -> bool:
        return await self.inner.ping()

    async def fetch_one(self, sql: str, *params: Any) -> Row | None:
        return await self.inner.fetch_one(sql, *params)

    async def fetch_all(self, sql: str, *params: Any) -> list[Row]:
        return await self.inner.fetch_all(sql, *params)

    async def execute(self, sql: str, *params: Any) -> ExecResult:
        return await self.inner.execute(sql, *params)

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> ExecResult:
        return await self.inner.execute_many(sql, rows)

    def transaction(self) -> AbstractAsyncContextManager[Executor]:
        fault = self._decide()
        if fault is None:
            return self.inner.transaction()
        return self._failing_transaction(*fault)

    def _decide(self) -> tuple[int, str, type[Exception]] | None:
        if current_service() != self.service:
            return None  # not a handler's transaction
        decision = self.plan.decide("db", self.service)
        if decision is None:
            return None
        n, u = decision
        slot = u * len(POINTS)
        point = POINTS[int(slot)]
        lost = point == "after-commit" or slot % 1 < 0.3
        if lost and not self.plan.allow_restart(self.service):
            if point == "after-commit":
                return None
            lost = False  # the service had its share of restarts for now: a deadlock instead
        return n, point, DatabaseUnavailable if lost else TransientError

    @asynccontextmanager
    async def _failing_transaction(self, n: int, point: str,
                                   error: type[Exception]) -> AsyncIterator[Executor]:
        def fail(where: str) -> Exception:
            self.plan.record("db", self.service, n, point=point, error=error.__name__)
            what = "lost connection" if error is DatabaseUnavailable else "deadlock"
            return error(f"chaos: {what} {where} ({self.service})")

        if point == "begin":
            raise fail("at begin")
        async with self.inner.transaction() as tx:
            if point == "mid":
                yield _FailOnWrite(tx, lambda: fail("mid-transaction"))
            else:
                yield tx
            if point == "commit":
                raise fail("at commit")  # raised inside: the real transaction rolls back
        if point == "after-commit":
            raise fail("after commit")


class _FailOnWrite:
    """A transaction's executor whose first write fails (reads pass: the work is half done)."""

    def __init__(self, tx: Executor, fail: Any) -> None:
        self._tx = tx
        self._fail = fail

    async def fetch_one(self, sql: str, *params: Any) -> Row | None:
        return await self._tx.fetch_one(sql, *params)

    async def fetch_all(self, sql: str, *params: Any) -> list[Row]:
        return await self._tx.fetch_all(sql, *params)

    async def execute(self, sql: str, *params: Any) -> ExecResult:
        raise self._fail()

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> ExecResult:
        raise self._fail()
