"""Transactional outbox: rows written inside a handler's transaction, published by the relay."""

from __future__ import annotations

import msgspec

from microcommerce.actors.requests import current_request_id
from microcommerce.contracts.events import (
    EventEnvelope,
    encode_event,
    event_type,
    new_event,
    utc_now_iso,
)
from microcommerce.storage import Database, Executor


class OutboxRow(msgspec.Struct):
    id: int
    topic: str
    event_key: str
    payload: str
    request_id: str | None = None


async def append(tx: Executor, producer: str, event_name: str, key: object, data: msgspec.Struct) -> EventEnvelope:
    """Record an event in the caller's transaction: it is published iff the transaction commits."""
    envelope = new_event(event_name, producer, data)
    await tx.execute(
        "INSERT INTO outbox (topic, event_key, event_type, payload, created_at, request_id) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        event_type(event_name).topic,
        str(key),
        event_name,
        encode_event(envelope).decode(),
        envelope.occurredAt,
        current_request_id.get(),
    )
    return envelope


async def pending_ids(db: Database, limit: int) -> list[int]:
    """Ids of unpublished rows, oldest first (an index-only scan)."""
    rows = await db.fetch_all("SELECT id FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT ?", limit)
    return [int(row["id"]) for row in rows]


async def unpublished(db: Database, ids: list[int]) -> list[OutboxRow]:
    """Those of `ids` still unpublished, oldest first (rows to send again)."""
    rows: list[OutboxRow] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        marks = ", ".join("?" for _ in chunk)
        found = await db.fetch_all(
            f"SELECT id, topic, event_key, payload, request_id FROM outbox "
            f"WHERE published_at IS NULL AND id IN ({marks})",
            *chunk,
        )
        rows += [msgspec.convert(row, OutboxRow) for row in found]
    return sorted(rows, key=lambda row: row.id)


async def mark_published(db: Database, ids: list[int]) -> None:
    marks = ", ".join("?" for _ in ids)
    await db.execute(f"UPDATE outbox SET published_at = ? WHERE id IN ({marks})", utc_now_iso(), *ids)


async def count_pending(db: Database) -> int:
    row = await db.fetch_one("SELECT COUNT(*) AS n FROM outbox WHERE published_at IS NULL")
    return int(row["n"]) if row else 0
