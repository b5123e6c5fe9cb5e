"""Inbox: consumers dedupe by eventId inside the transaction that applies the event."""

from __future__ import annotations

from microcommerce.contracts.events import utc_now_iso
from microcommerce.storage import Executor


async def claim(tx: Executor, consumer: str, event_id: str) -> bool:
    """True the first time this consumer sees the event; False for a redelivery."""
    result = await tx.execute(
        "INSERT OR IGNORE INTO inbox (consumer, event_id, received_at) VALUES (?, ?, ?)",
        consumer,
        event_id,
        utc_now_iso(),
    )
    return result.rowcount == 1
