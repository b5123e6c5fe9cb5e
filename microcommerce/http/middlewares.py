"""The middlewares of SPEC section 3, outermost first: observe, CORS, rate limit, errors, internal guard."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from microcommerce import environment
from microcommerce.actors.requests import current_request_id
from microcommerce.config import Settings
from microcommerce.errors import BadRequest, Forbidden, ServiceError
from microcommerce.http.auth import PRINCIPAL_KEY
from microcommerce.http.body import json_response
from microcommerce.http.metrics import HttpMetrics

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
access_log = logging.getLogger("microcommerce.access")
log = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "geolocation=(), microphone=(), camera=()",
    "Cross-Origin-Resource-Policy": "same-site",
    # aiohttp would otherwise announce "Python/3.x aiohttp/3.y"; say nothing instead.
    "Server": "",
}
INTERNAL_TOKEN_HEADER = "X-Internal-Token"
REQUEST_ID = web.RequestKey("request_id", str)
# False for an app that answers /internal/* itself (the gateway: 404 unless expose_internal).
GUARD_INTERNAL = web.AppKey("guard_internal", bool)
ActivityHook = Callable[[web.Request, int, float], None]


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: applies to every response, errors and 404s included."""
    response.headers.update(SECURITY_HEADERS)
    request_id = request.get(REQUEST_ID)
    if request_id:
        response.headers["X-Request-Id"] = request_id


def _usable_request_id(value: str | None) -> str | None:
    """A client's X-Request-Id is echoed in a response header: printable ASCII only, bounded."""
    if value and len(value) <= 128 and value.isascii() and value.isprintable():
        return value
    return None


def new_request_id() -> str:
    """32 hex digits, like uuid4().hex, ~8x cheaper: no getrandom syscall per request. Ids must
    be unique, not secret: the environment's generator (seeded from os.urandom, again after fork)."""
    return f"{environment.rng().getrandbits(128):032x}"


def is_internal_caller(request: web.Request, settings: Settings) -> bool:
    return request.headers.get(INTERNAL_TOKEN_HEADER) == settings.internal_token


def observe(service: str, settings: Settings, metrics: HttpMetrics,
            activity: ActivityHook | None) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def observe_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request[REQUEST_ID] = _usable_request_id(request.headers.get("X-Request-Id")) or new_request_id()
        context_token = current_request_id.set(request[REQUEST_ID])  # asks carry it to the workers
        started = environment.monotonic()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        finally:
            elapsed = environment.monotonic() - started
            info = request.match_info.route.resource
            route = info.canonical if info is not None else "unmatched"
            metrics.observe(request.method, route, status, elapsed)
            if settings.access_log:
                access_log.info(json.dumps({
                    "service": service, "method": request.method, "path": request.path,
                    "status": status, "durationMs": round(elapsed * 1000, 2),
                    "requestId": request[REQUEST_ID]}))
            if activity is not None:
                activity(request, status, elapsed)
            current_request_id.reset(context_token)  # after the access log: it carries the id too

    return observe_middleware


def cors(settings: Settings) -> Callable[..., Awaitable[web.StreamResponse]]:
    allowed = settings.cors_origins

    def headers_for(origin: str | None) -> dict[str, str]:
        if not origin or ("*" not in allowed and origin not in allowed):
            return {}
        return {
            "Access-Control-Allow-Origin": "*" if "*" in allowed else origin,
            "Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
            "Access-Control-Allow-Headers": "Authorization, Content-Type, X-Request-Id",
            "Access-Control-Expose-Headers": "X-Request-Id, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After",
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        }

    @web.middleware
    async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            return web.Response(status=204, headers=headers_for(origin))
        response = await handler(request)
        response.headers.update(headers_for(origin))
        return response

    return cors_middleware


class RateLimiter:
    """Fixed window per client IP; cheap enough to run on every request."""

    def __init__(self, window_ms: int, limit: int) -> None:
        self.window_s = window_ms / 1000.0
        self.limit = limit
        self._windows: dict[str, list[float]] = {}

    def hit(self, client: str, now: float) -> tuple[bool, int, float]:
        """(allowed, remaining, window reset time)."""
        window = self._windows.get(client)
        if window is None or now >= window[0] + self.window_s:
            if len(self._windows) > 50_000:
                self._purge(now)
            window = self._windows[client] = [now, 0]
        window[1] += 1
        remaining = max(self.limit - int(window[1]), 0)
        return window[1] <= self.limit, remaining, window[0] + self.window_s

    def _purge(self, now: float) -> None:
        for client in [c for c, w in self._windows.items() if now >= w[0] + self.window_s]:
            del self._windows[client]


UNLIMITED_PATHS = ("/health", "/metrics")


def rate_limit(settings: Settings, metrics: HttpMetrics) -> Callable[..., Awaitable[web.StreamResponse]]:
    limiter = RateLimiter(settings.rate_limit_window_ms, settings.rate_limit_max)

    @web.middleware
    async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        # Calls from the gateway or another service carry the internal token: limited upstream.
        if request.path in UNLIMITED_PATHS or is_internal_caller(request, settings):
            return await handler(request)
        now = environment.now()
        allowed, remaining, reset_at = limiter.hit(request.remote or "unknown", now)
        headers = {
            "X-RateLimit-Limit": str(limiter.limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(int(reset_at)),
        }
        if not allowed:
            metrics.rate_limited += 1
            headers["Retry-After"] = str(max(1, int(reset_at - now + 0.999)))
            return json_response({"message": "Too many requests, slow down"}, 429, headers)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers.update(headers)
            raise
        response.headers.update(headers)
        return response

    return rate_limit_middleware


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes JSON {"message": ...}; no stack trace reaches a client."""
    try:
        _refuse_undecodable_headers(request)
        return await handler(request)
    except ServiceError as err:
        return json_response(err.to_body(), err.status, err.headers)
    except web.HTTPException as exc:
        if exc.status == 404:
            message = f"Route not found: {request.method} {request.path}"
        elif exc.status == 405:
            message = f"Method not allowed: {request.method} {request.path}"
        elif exc.status == 413:
            message = "Request body too large"
        else:
            message = exc.reason
        if exc.status < 400:
            raise
        return json_response({"message": message}, exc.status)
    except Exception:  # noqa: BLE001
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_response({"message": "Internal server error"}, 500)


def _refuse_undecodable_headers(request: web.Request) -> None:
    """aiohttp keeps a non-UTF-8 header byte as a lone surrogate, which breaks whatever later
    encodes the value (forwarding it, echoing it): refuse the request up front instead."""
    for name, value in request.headers.items():
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise BadRequest(f"Header {name} is not valid UTF-8") from None


def internal_guard(settings: Settings) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def internal_guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (request.path.startswith("/internal/") and request.app.get(GUARD_INTERNAL, True)
                and not is_internal_caller(request, settings)):
            raise Forbidden("Internal route: service token required")
        return await handler(request)

    return internal_guard_middleware


def principal_of(request: web.Request):  # noqa: ANN201 - Principal | None
    return request.get(PRINCIPAL_KEY)
