"""Records every domain event and HTTP activity report once, and answers log queries."""

from __future__ import annotations

from typing import Any

import msgspec

from microcommerce.actors.service import ServiceActor, handles, on_event
from microcommerce.contracts import registry  # noqa: F401 - registers every event type first
from microcommerce.contracts.events import EventEnvelope, event_type, known_event_types
from microcommerce.services.audit import domain, store
from microcommerce.services.audit.messages import AuditPage, ListAuditLogs
from microcommerce.storage import Executor

# Every registered event type of every topic, HTTP_ACTIVITY included.
AUDITED_EVENT_TYPES = tuple(sorted(known_event_types()))


class AuditActor(ServiceActor):
    @on_event(*AUDITED_EVENT_TYPES)
    async def record(self, tx: Executor, data: Any, envelope: EventEnvelope) -> None:
        payload = msgspec.to_builtins(data)
        record = domain.build_record(
            event_type=envelope.eventType, event_id=envelope.eventId, producer=envelope.producer,
            occurred_at=envelope.occurredAt, topic=event_type(envelope.eventType).topic,
            data=payload if isinstance(payload, dict) else {"value": payload},
        )
        await store.insert(tx, record)

    @handles(ListAuditLogs)
    async def list_logs(self, cmd: ListAuditLogs) -> AuditPage:
        items, total = await store.search(self.db, cmd.filters)
        return AuditPage(items=items, total=total, page=cmd.filters.page, limit=cmd.filters.limit)
