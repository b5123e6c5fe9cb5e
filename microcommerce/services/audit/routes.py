"""HTTP routes of the audit service: the log for admins, and each user's own records."""

from __future__ import annotations

import msgspec
from aiohttp import web

from microcommerce.http.app import ask
from microcommerce.http.auth import authenticate, require_role
from microcommerce.http.body import json_response, query_value
from microcommerce.http.openapi import api
from microcommerce.services.audit import domain
from microcommerce.services.audit.messages import AuditPage, ListAuditLogs


class AuditQuery(msgspec.Struct):
    """The query parameters of both log routes (read by `_filters`)."""

    page: int | None = None
    limit: int | None = None
    logType: str | None = None
    serviceName: str | None = None
    actorUserId: int | None = None
    actorRole: str | None = None
    severity: str | None = None
    httpMethod: str | None = None
    httpStatus: int | None = None
    eventType: str | None = None
    occurredFrom: str | None = msgspec.field(default=None, name="from")
    occurredTo: str | None = msgspec.field(default=None, name="to")
    q: str | None = None


def _filters(request: web.Request) -> domain.AuditFilters:
    query = request.query
    return domain.audit_filters(
        page=query_value(request, "page", int, None),
        limit=query_value(request, "limit", int, None),
        log_type=query.get("logType"),
        service_name=query.get("serviceName"),
        actor_user_id=query_value(request, "actorUserId", int, None),
        actor_role=query.get("actorRole"),
        severity=query.get("severity"),
        http_method=query.get("httpMethod"),
        http_status=query_value(request, "httpStatus", int, None),
        event_type=query.get("eventType"),
        occurred_from=query.get("from"),
        occurred_to=query.get("to"),
        q=query.get("q"),
    )


@api(summary="The audit log, filtered and paged (admin)", auth="admin", query=AuditQuery,
     responses={200: AuditPage})
async def list_logs(request: web.Request) -> web.Response:
    require_role(request, "admin")
    return json_response(await ask(request, ListAuditLogs(filters=_filters(request))))


@api(summary="The caller's own audit records", auth=True, query=AuditQuery, responses={200: AuditPage})
async def my_logs(request: web.Request) -> web.Response:
    """The caller's own records; the other filters apply too, but never someone else's id."""
    principal = authenticate(request)
    filters = msgspec.structs.replace(_filters(request), actor_user_id=principal.id)
    return json_response(await ask(request, ListAuditLogs(filters=filters)))


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/audit/logs", list_logs)
    app.router.add_get("/audit/logs/me", my_logs)
