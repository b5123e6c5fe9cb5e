"""Audit contract: HTTP activity every service reports (best effort, not through the outbox)."""

from __future__ import annotations

import msgspec

from microcommerce.contracts.events import AUDIT_EVENTS, register_event


class HttpActivity(msgspec.Struct, kw_only=True, frozen=True):
    service: str
    method: str
    path: str
    status: int
    durationMs: float
    requestId: str
    ip: str | None = None
    actorUserId: int | None = None
    actorRole: str | None = None


HTTP_ACTIVITY = "HTTP_ACTIVITY"
register_event(HTTP_ACTIVITY, AUDIT_EVENTS, HttpActivity)
