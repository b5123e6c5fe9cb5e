"""The aiohttp application of one service: middlewares, /health, /metrics, then its routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from microcommerce.actors.bus import EventBus
from microcommerce.actors.system import ActorSystem
from microcommerce.config import Settings
from microcommerce.contracts.audit import HTTP_ACTIVITY, HttpActivity
from microcommerce.contracts.events import AUDIT_EVENTS, new_event
from microcommerce.http import apidocs
from microcommerce.http import middlewares as mw
from microcommerce.http.auth import TOKEN_ISSUER, TokenIssuer
from microcommerce.http.body import json_response
from microcommerce.http.metrics import HttpMetrics
from microcommerce.http.openapi import Raw, api

SYSTEM = web.AppKey("system", ActorSystem)
SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", HttpMetrics)
NODE = web.AppKey("node", object)  # the Node serving this app (typed loosely: no import cycle)
HEALTH_CHECK = web.AppKey("health_check", Callable[[], Awaitable[dict[str, Any]]])
MAX_BODY_BYTES = 1024 * 1024
QUIET_PATHS = ("/health", "/metrics")


class HealthReport(msgspec.Struct):
    service: str
    status: str  # up | down
    checks: dict[str, Any]


def create_app(
    service: str,
    settings: Settings,
    issuer: TokenIssuer,
    *,
    system: ActorSystem | None = None,
    bus: EventBus | None = None,
    setup_routes: Callable[[web.Application], None] | None = None,
    health_check: Callable[[], Awaitable[dict[str, Any]]] | None = None,
) -> web.Application:
    metrics = HttpMetrics(service)
    activity = _activity_reporter(service, bus) if bus is not None else None
    app = web.Application(
        middlewares=[
            mw.observe(service, settings, metrics, activity),
            mw.cors(settings),
            mw.rate_limit(settings, metrics),
            mw.errors,
            mw.internal_guard(settings),
        ],
        client_max_size=MAX_BODY_BYTES,
    )
    app[SETTINGS] = settings
    app[TOKEN_ISSUER] = issuer
    app[METRICS] = metrics
    if system is not None:
        app[SYSTEM] = system
    check = health_check or (system.health if system is not None else None)
    if check is not None:
        app[HEALTH_CHECK] = check
    app.on_response_prepare.append(mw.add_security_headers)
    app.router.add_get("/health", _health(service))
    app.router.add_get("/metrics", _metrics)
    if system is not None:
        from microcommerce.http.commands import setup_command_routes  # both import this module
        from microcommerce.http.dead_letters import setup_dead_letter_routes

        setup_dead_letter_routes(app)
        setup_command_routes(app)
    apidocs.setup(app, service)
    if setup_routes is not None:
        setup_routes(app)
    return app


async def ask(request: web.Request, command: Any, *, timeout: float | None = None) -> Any:
    """The actor bridge: send a command to this service's workers, await the reply on this loop."""
    return await request.app[SYSTEM].ask(command, timeout=timeout)


def _health(service: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    @api(summary="Liveness and readiness of this service", responses={200: HealthReport, 503: HealthReport},
         rate_limited=False)
    async def health(request: web.Request) -> web.Response:
        check = request.app.get(HEALTH_CHECK)
        report: dict[str, Any] = {"status": "up", "checks": {}}
        if check is not None:
            report = await check()
        if not request.app[TOKEN_ISSUER].revocations.loaded:
            # Not ready: authenticated requests get 503 until the user service's snapshot arrives.
            report = {**report, "status": "down", "checks": {**report.get("checks", {}), "revocations": "loading"}}
        body = {"service": service, **report}
        return json_response(body, 200 if report["status"] == "up" else 503)

    return health


@api(summary="Prometheus metrics", responses={200: Raw("text/plain")}, rate_limited=False)
async def _metrics(request: web.Request) -> web.Response:
    system = request.app.get(SYSTEM)
    runtime: dict[str, float | int] = {}
    if system is not None:
        depths = system.mailbox_depths()
        runtime = {
            "actor_mailbox_depth_max": max(depths, default=0),
            "actor_mailbox_depth_total": sum(depths),
            "actor_restarts_total": system.restarts_total(),
            "actor_dead_letters_total": system.dead_letters.total(system.name),
            "actor_escalated": int(system.escalation is not None),
            "outbox_unpublished": system.outbox.unpublished,
            "outbox_in_flight": system.outbox.in_flight,
            "outbox_published_total": system.outbox.published,
            **system.bus.metrics(),  # transport gauges, e.g. Kafka consumer lag
        }
    text = request.app[METRICS].render(runtime)
    return web.Response(text=text, content_type="text/plain", charset="utf-8",
                        headers={"Cache-Control": "no-store"})


def _activity_reporter(service: str, bus: EventBus) -> mw.ActivityHook:
    """Report writes and admin activity to the audit topic (best effort: never fails a request)."""

    def report(request: web.Request, status: int, elapsed: float) -> None:
        principal = mw.principal_of(request)
        is_write = request.method not in ("GET", "HEAD", "OPTIONS")
        is_admin = principal is not None and principal.role == "admin"
        if request.path in QUIET_PATHS or request.path.startswith("/internal/"):
            return
        if not (is_write or is_admin):
            return
        data = HttpActivity(
            service=service, method=request.method, path=request.path, status=status,
            durationMs=round(elapsed * 1000, 2), requestId=request[mw.REQUEST_ID],
            ip=request.remote, actorUserId=principal.id if principal else None,
            actorRole=principal.role if principal else None,
        )
        try:
            bus.publish(AUDIT_EVENTS, data.requestId, new_event(HTTP_ACTIVITY, f"{service}-service", data))
        except Exception:  # noqa: BLE001 - auditing must not break the request
            mw.log.warning("could not report HTTP activity", exc_info=True)

    return report
