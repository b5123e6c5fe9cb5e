"""The dead-letter queue: events a consumer kept failing on, parked durably in its database.

A parked event waits, with the error and the number of attempts, until an operator asks for a
redrive (`microcommerce dlq redrive`, or `POST /admin/dead-letters/redrive` on the service).
The service's relay then hands it to the service's own consumers again; the inbox makes sure
it is applied at most once however often it is redriven. If it fails again it is parked again.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from microcommerce.contracts.events import EventEnvelope, encode_event, utc_now_iso
from microcommerce.storage import Database

PARKED, REQUESTED, REDRIVEN = "parked", "redrive-requested", "redriven"
STATUSES = (PARKED, REQUESTED, REDRIVEN)


class ParkedEvent(msgspec.Struct, frozen=True):
    consumer: str
    topic: str
    event_key: str
    envelope: EventEnvelope
    error: str
    attempts: int


class DeadLetter(msgspec.Struct, frozen=True):
    """One parked event as an operator sees it."""

    id: int
    consumer: str
    topic: str
    eventKey: str
    eventId: str
    eventType: str
    error: str
    attempts: int
    parkedAt: str
    status: str
    redriveRequestedAt: str | None
    redrivenAt: str | None
    payload: str


_COLUMNS = ("id, consumer, topic, event_key, event_id, event_type, error, attempts, parked_at, "
            "redrive_requested_at, redriven_at, payload")


def _letter(row: dict[str, Any]) -> DeadLetter:
    if row["redriven_at"] is not None:
        status = REDRIVEN
    elif row["redrive_requested_at"] is not None:
        status = REQUESTED
    else:
        status = PARKED
    return DeadLetter(
        id=int(row["id"]), consumer=row["consumer"], topic=row["topic"], eventKey=row["event_key"],
        eventId=row["event_id"], eventType=row["event_type"], error=row["error"],
        attempts=int(row["attempts"]), parkedAt=row["parked_at"], status=status,
        redriveRequestedAt=row["redrive_requested_at"], redrivenAt=row["redriven_at"],
        payload=row["payload"],
    )


def _status_clause(status: str | None) -> str:
    return {
        None: "",
        PARKED: " AND redrive_requested_at IS NULL AND redriven_at IS NULL",
        REQUESTED: " AND redrive_requested_at IS NOT NULL AND redriven_at IS NULL",
        REDRIVEN: " AND redriven_at IS NOT NULL",
    }[status]


async def park(db: Database, letter: ParkedEvent) -> int:
    """Park an event (again, if it failed after a redrive); returns the dead letter's id."""
    now = utc_now_iso()
    async with db.transaction() as tx:
        row = await tx.fetch_one("SELECT id FROM dead_letters WHERE consumer = ? AND event_id = ?",
                                 letter.consumer, letter.envelope.eventId)
        if row is not None:
            await tx.execute(
                "UPDATE dead_letters SET error = ?, attempts = attempts + ?, parked_at = ?, "
                "redrive_requested_at = NULL, redriven_at = NULL WHERE id = ?",
                letter.error, letter.attempts, now, row["id"])
            return int(row["id"])
        result = await tx.execute(
            "INSERT INTO dead_letters (consumer, topic, event_key, event_id, event_type, payload, error, "
            "attempts, parked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            letter.consumer, letter.topic, letter.event_key, letter.envelope.eventId,
            letter.envelope.eventType, encode_event(letter.envelope).decode(), letter.error,
            letter.attempts, now)
        assert result.lastrowid is not None
        return result.lastrowid


async def list_letters(db: Database, *, topic: str | None = None, status: str | None = None,
                       limit: int = 100) -> list[DeadLetter]:
    sql = f"SELECT {_COLUMNS} FROM dead_letters WHERE 1 = 1{_status_clause(status)}"
    params: list[Any] = []
    if topic:
        sql += " AND topic = ?"
        params.append(topic)
    rows = await db.fetch_all(sql + " ORDER BY id LIMIT ?", *params, limit)
    return [_letter(row) for row in rows]


async def request_redrive(db: Database, *, ids: list[int] | None = None, topic: str | None = None) -> int:
    """Mark parked letters (all, or `ids`, optionally of one topic) for redrive; returns how many.

    Letters already requested or redriven are left alone, so asking twice redrives once.
    """
    sql = (f"UPDATE dead_letters SET redrive_requested_at = ? WHERE 1 = 1{_status_clause(PARKED)}")
    params: list[Any] = [utc_now_iso()]
    if ids is not None:
        if not ids:
            return 0
        sql += f" AND id IN ({', '.join('?' for _ in ids)})"
        params += ids
    if topic:
        sql += " AND topic = ?"
        params.append(topic)
    return (await db.execute(sql, *params)).rowcount


async def requested(db: Database, limit: int = 100) -> list[DeadLetter]:
    return await list_letters(db, status=REQUESTED, limit=limit)


async def mark_redriven(db: Database, letter_id: int) -> None:
    """Only a letter still requested: one that failed again was parked afresh meanwhile."""
    await db.execute(
        f"UPDATE dead_letters SET redriven_at = ? WHERE id = ?{_status_clause(REQUESTED)}",
        utc_now_iso(), letter_id)


# -- commands a worker answers itself (the service's logic never sees them) -------------------
class DeadLetterCommand(msgspec.Struct, frozen=True):
    routing_key: ClassVar[None] = None

    async def run(self, db: Database) -> Any:
        raise NotImplementedError


class ListDeadLetters(DeadLetterCommand, frozen=True):
    topic: str | None = None
    status: str | None = None
    limit: int = 100

    async def run(self, db: Database) -> list[DeadLetter]:
        return await list_letters(db, topic=self.topic, status=self.status, limit=self.limit)


class RequestRedrive(DeadLetterCommand, frozen=True):
    ids: list[int] | None = None
    topic: str | None = None

    async def run(self, db: Database) -> int:
        return await request_redrive(db, ids=self.ids, topic=self.topic)
