"""Commands the audit service's actors handle, and the views they answer with."""

from __future__ import annotations

import msgspec

from microcommerce.contracts.commands import Command
from microcommerce.services.audit.domain import AuditFilters


class AuditLogView(msgspec.Struct, kw_only=True):
    id: int
    logType: str
    serviceName: str
    eventType: str
    eventId: str
    actorUserId: int | None
    actorRole: str | None
    severity: str
    httpMethod: str | None
    httpStatus: int | None
    path: str | None
    summary: str
    payload: str  # the event's data as JSON text (secrets redacted)
    occurredAt: str


class AuditPage(msgspec.Struct, kw_only=True):
    items: list[AuditLogView]
    total: int
    page: int
    limit: int


class ListAuditLogs(Command, frozen=True):
    """Read-only: any worker may answer (no key)."""

    filters: AuditFilters
