"""Transactional outbox: rows written inside a handler's transaction, published by the relay."""

from __future__ import annotations

import msgspec

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


async def append(tx: Executor, producer: str, event_name: str, key: object, data: msgspec.Struct) -> EventEnvelope:
    """Record an event in the caller's transaction: it is published iff the transaction commits."""
    envelope = new_event(event_name, producer, data)
    await tx.execute(
        "INSERT INTO outbox (topic, event_key, event_type, payload, created_at) VALUES (?, ?, ?, ?, ?)",
        event_type(event_name).topic,
        str(key),
        event_name,
        encode_event(envelope).decode(),
        envelope.occurredAt,
    )
    return envelope


async def pending(db: Database, limit: int = 200) -> list[OutboxRow]:
    rows = await db.fetch_all(
        "SELECT id, topic, event_key, payload FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT ?",
        limit,
    )
    return [msgspec.convert(row, OutboxRow) for row in rows]


async def mark_published(db: Database, ids: list[int]) -> None:
    marks = ", ".join("?" for _ in ids)
    await db.execute(f"UPDATE outbox SET published_at = ? WHERE id IN ({marks})", utc_now_iso(), *ids)


async def count_pending(db: Database) -> int:
    row = await db.fetch_one("SELECT COUNT(*) AS n FROM outbox WHERE published_at IS NULL")
    return int(row["n"]) if row else 0
