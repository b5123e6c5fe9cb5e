"""HTTP routes of the audit service: the log for admins, and each user's own records."""

from __future__ import annotations

import msgspec
from aiohttp import web

from microcommerce.http.app import ask
from microcommerce.http.auth import authenticate, require_role
from microcommerce.http.body import json_response, query_value
from microcommerce.services.audit import domain
from microcommerce.services.audit.messages import ListAuditLogs


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


async def list_logs(request: web.Request) -> web.Response:
    require_role(request, "admin")
    return json_response(await ask(request, ListAuditLogs(filters=_filters(request))))


async def my_logs(request: web.Request) -> web.Response:
    """The caller's own records; the other filters apply too, but never someone else's id."""
    principal = authenticate(request)
    filters = msgspec.structs.replace(_filters(request), actor_user_id=principal.id)
    return json_response(await ask(request, ListAuditLogs(filters=filters)))


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/audit/logs", list_logs)
    app.router.add_get("/audit/logs/me", my_logs)
