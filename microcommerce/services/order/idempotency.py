"""Idempotency-Key of order creation and checkout: one effect and one answer per (user, key).

Commands of one user reach one worker, so in one process two requests with the same key run one
after the other and the second finds the first's stored answer. The rows in the order database
(unique per user and key) make it hold across processes and crashes too:

- the first request claims the key (`running`) and writes the order id with the order itself;
- its answer (201 with the order, or a 4xx with its message) is stored and replayed to every
  retry with the same request for `IDEMPOTENCY_KEY_TTL_S`; the same key with another request is 422;
- a failure without an answer (5xx, timeout, crash) leaves the key `abandoned`; the next retry
  takes it over: if the lost attempt's order went through it answers with that order, otherwise it
  places the order again (no effect happened twice);
- a retry that finds the key `running` in another process waits briefly for its answer, then 409.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from microcommerce import environment
from microcommerce.config import Settings
from microcommerce.errors import Conflict, ServiceError, error_from_status
from microcommerce.http.idempotency import HEADER, IdempotencyKey, check_same_request
from microcommerce.services.order import domain, store
from microcommerce.services.order.messages import OrderView
from microcommerce.storage import Database

CREATED = 201
WAIT_FOR_RUNNING_S = 2.0
POLL_S = 0.05

# Places the order, given the key row's id (written with the order).
Work = Callable[[int], Awaitable[OrderView]]
# The order a lost attempt left: its view when it went through, None to place it again.
Recover = Callable[[int], Awaitable[OrderView | None]]


async def once(db: Database, settings: Settings, user_id: int, key: IdempotencyKey, work: Work,
               recover: Recover) -> OrderView:
    stale_after_s = domain.claim_stale_after_s(settings.timeout_of("cart"), settings.timeout_of("inventory"))
    deadline = environment.monotonic() + WAIT_FOR_RUNNING_S
    while True:
        action, row = await _begin(db, user_id, key, settings.idempotency_key_ttl_s, stale_after_s)
        if action == "replay":
            return _replay(row)
        if action == "run":
            break
        if environment.monotonic() > deadline:
            raise Conflict(f"A request with this {HEADER} is still in progress; retry it shortly")
        await asyncio.sleep(POLL_S)
    key_id = int(row["id"])
    try:
        view = await recover(int(row["order_id"])) if row.get("order_id") is not None else None
        if view is None:
            view = await work(key_id)
        await _answer(db, key_id, CREATED, msgspec.json.encode(view))
    except ServiceError as err:
        if err.status >= 500:
            await _abandon(db, key_id)
        else:
            await _answer(db, key_id, err.status, msgspec.json.encode(err.to_body()))
        raise
    except BaseException:
        # No answer (a crash, a lost transaction race the worker reruns): the rerun or the
        # client's retry takes the key over and finds the order, if this attempt placed it.
        await _abandon(db, key_id)
        raise
    return view


async def _begin(db: Database, user_id: int, key: IdempotencyKey, ttl_s: float,
                 stale_after_s: float) -> tuple[str, dict[str, Any]]:
    """("run", row): ours to work on; ("replay", row): answered; ("wait", row): running elsewhere."""
    now = environment.now()
    async with db.transaction() as tx:
        row = await store.idempotency_key(tx, user_id, key.key)
        if row is not None and domain.key_expired(row["created_at"], now, ttl_s):
            await store.delete_key(tx, int(row["id"]))
            row = None
        if row is None and await store.claim_key(tx, user_id, key.key, key.fingerprint):
            claimed = await store.idempotency_key(tx, user_id, key.key)
            assert claimed is not None
            return "run", claimed
        row = row or await store.idempotency_key(tx, user_id, key.key)
        assert row is not None
        check_same_request(row["fingerprint"], key)
        if row["state"] == domain.KEY_DONE:
            return "replay", row
        lost = row["state"] == domain.KEY_ABANDONED or domain.claim_is_stale(row["updated_at"], now, stale_after_s)
        if lost and await store.take_over_key(tx, int(row["id"]), row["state"], row["updated_at"]):
            return "run", row
        return "wait", row


def _replay(row: dict[str, Any]) -> OrderView:
    status = int(row["status_code"])
    if status == CREATED:
        return msgspec.json.decode(row["response"], type=OrderView)
    body = msgspec.json.decode(row["response"])
    raise error_from_status(status, body.get("message", ""), body.get("details"))


async def _answer(db: Database, key_id: int, status: int, response: bytes) -> None:
    async with db.transaction() as tx:
        await store.answer_key(tx, key_id, status, response.decode())


async def _abandon(db: Database, key_id: int) -> None:
    # Best effort: if even this fails, the claim goes stale and a later retry takes it over.
    with contextlib.suppress(Exception):
        async with db.transaction() as tx:
            await store.abandon_key(tx, key_id)
