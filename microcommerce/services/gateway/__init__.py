"""Gateway (port 3000): the single public entry point; routes by path prefix to each service.

A service served by this same process gets the request in-process (no socket, no second
parse); one in another process gets it over HTTP with a timeout and a circuit breaker.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from microcommerce.actors.breaker import CircuitBreaker
from microcommerce.errors import NotFound, ServiceUnavailable, UpstreamTimeout
from microcommerce.http.apidocs import DOCUMENT_SOURCE
from microcommerce.http.app import HEALTH_CHECK, NODE, SETTINGS
from microcommerce.http.auth import LOGOUT_PATH, authenticate
from microcommerce.http.middlewares import GUARD_INTERNAL, INTERNAL_TOKEN_HEADER, REQUEST_ID
from microcommerce.http.openapi import add_gateway_errors, api, build_document, merge_documents
from microcommerce.services import ServiceSpec

ROUTES = {
    "auth": "user", "users": "user", "carts": "cart", "orders": "order", "products": "product",
    "categories": "product", "inventory": "inventory", "search": "search", "payments": "payment",
    "notifications": "notification", "audit": "audit",
}
# Hop-by-hop and per-response headers the gateway sets itself.
DROPPED_RESPONSE_HEADERS = {
    "connection", "keep-alive", "transfer-encoding", "content-length", "server", "date",
    "x-request-id", "x-content-type-options", "x-frame-options", "referrer-policy",
    "permissions-policy", "cross-origin-resource-policy", "content-encoding",
}
DROPPED_REQUEST_HEADERS = {"host", "connection", "keep-alive", "transfer-encoding", "content-length",
                           INTERNAL_TOKEN_HEADER.lower()}
SESSION = web.AppKey("session", aiohttp.ClientSession)
BREAKERS = web.AppKey("breakers", dict)
DOCUMENT_CACHE = web.AppKey("gateway_document", dict)


# With EXPOSE_INTERNAL, /internal/* routes by these patterns (first match wins): several
# services share the /internal/orders/ prefix.
INTERNAL_ROUTES = (
    (re.compile(r"^/internal/products/"), "product"),
    (re.compile(r"^/internal/reservations(/|$)"), "inventory"),
    (re.compile(r"^/internal/orders/[^/]+/(release|confirm)$"), "inventory"),
    (re.compile(r"^/internal/orders/[^/]+/payments$"), "payment"),
    (re.compile(r"^/internal/orders/"), "order"),
)


def target_service(path: str) -> str | None:
    if path.startswith("/internal/"):
        return next((service for pattern, service in INTERNAL_ROUTES if pattern.match(path)), None)
    first = path.lstrip("/").split("/", 1)[0]
    return ROUTES.get(first)


@api(hidden=True)  # documented by the services it forwards to
async def proxy(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    if request.path.startswith("/internal/") and not settings.expose_internal:
        raise NotFound(f"Route not found: {request.method} {request.path}")
    service = target_service(request.path)
    if service is None:
        raise NotFound(f"Route not found: {request.method} {request.path}")
    if "Authorization" in request.headers and request.path != LOGOUT_PATH:
        authenticate(request)  # reject a bad token here, before it costs a hop (logout: twice is fine)
    headers = {k: v for k, v in request.headers.items() if k.lower() not in DROPPED_REQUEST_HEADERS}
    headers[INTERNAL_TOKEN_HEADER] = settings.internal_token
    headers["X-Request-Id"] = request[REQUEST_ID]
    headers["X-Forwarded-For"] = request.remote or ""
    local_app = _served_here(request, service)
    if local_app is not None:
        return await _dispatch_in_process(request, local_app, headers)
    return await _forward_over_http(request, service, headers)


def _served_here(request: web.Request, service: str) -> web.Application | None:
    """The app of `service` when this process serves it (all-in-one mode), else None."""
    hosted = request.app[NODE].services.get(service)
    return hosted.app if hosted is not None and hosted.runner is not None else None


async def _dispatch_in_process(request: web.Request, app: web.Application,
                               headers: dict[str, str]) -> web.StreamResponse:
    """Hand the request to the service's app without a socket: its router and middlewares
    run exactly as for a request on its own port (aiohttp's `_handle`, stable across 3.x)."""
    inner = request.clone(headers=headers)
    return await app._handle(inner)  # noqa: SLF001


async def _forward_over_http(request: web.Request, service: str,
                             headers: dict[str, str]) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    breaker: CircuitBreaker = request.app[BREAKERS].setdefault(service, CircuitBreaker(service))
    breaker.before_call()
    url = settings.url_of(service) + request.rel_url.path_qs
    timeout = aiohttp.ClientTimeout(total=settings.timeout_of(service))
    try:
        async with request.app[SESSION].request(request.method, url, headers=headers,
                                                data=await request.read(), timeout=timeout,
                                                allow_redirects=False) as upstream:
            body = await upstream.read()
            out_headers = {k: v for k, v in upstream.headers.items()
                           if k.lower() not in DROPPED_RESPONSE_HEADERS}
            breaker.succeeded()
            return web.Response(body=body, status=upstream.status, headers=out_headers)
    except TimeoutError:
        breaker.failed()
        raise UpstreamTimeout(f"{service} service did not answer in time") from None
    except aiohttp.ClientError:
        breaker.failed()
        raise ServiceUnavailable(f"{service} service is unavailable") from None


async def _client_session(app: web.Application) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=256, keepalive_timeout=30)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        app[SESSION] = session
        app[BREAKERS] = {}
        yield


async def _downstream_health(app: web.Application) -> dict:
    settings = app[SETTINGS]
    names = [n for n in app[NODE].service_names if n != "gateway"] or list(ROUTES.values())

    async def probe(name: str) -> tuple[str, str]:
        try:
            async with app[SESSION].get(settings.url_of(name) + "/health",
                                        timeout=aiohttp.ClientTimeout(total=2)) as resp:
                return name, "up" if resp.status == 200 else "down"
        except (TimeoutError, aiohttp.ClientError):
            return name, "unreachable"

    results = dict(await asyncio.gather(*(probe(n) for n in sorted(set(names)))))
    status = "up" if all(v == "up" for v in results.values()) else "degraded"
    return {"status": "up", "overall": status, "checks": {"gateway": "up", "services": results}}


async def public_document(request: web.Request) -> dict:
    """The gateway's own routes and every service's public ones; built once all services answer."""
    cache = request.app[DOCUMENT_CACHE]
    if "document" in cache:
        return cache["document"]
    documents = {"gateway": build_document(request.app, "gateway")}
    for service in sorted(set(ROUTES.values())):
        document = await _service_document(request.app, service)
        if document is not None:
            documents[service] = add_gateway_errors(document)
    merged = merge_documents(documents, lambda service, path: (
        service == "gateway" or target_service(path) == service))
    if len(documents) == len(set(ROUTES.values())) + 1:
        cache["document"] = merged
    return merged


async def _service_document(app: web.Application, service: str) -> dict | None:
    hosted = app[NODE].services.get(service)
    if hosted is not None:
        return build_document(hosted.app, service, include_internal=False)
    settings = app[SETTINGS]
    try:
        async with app[SESSION].get(settings.url_of(service) + "/openapi.json",
                                    timeout=aiohttp.ClientTimeout(total=2)) as resp:
            return await resp.json() if resp.status == 200 else None
    except (TimeoutError, aiohttp.ClientError, ValueError):
        return None  # that service is left out until it answers


def setup_routes(app: web.Application) -> None:
    app.cleanup_ctx.append(_client_session)
    app[DOCUMENT_SOURCE] = public_document
    app[DOCUMENT_CACHE] = {}
    app[HEALTH_CHECK] = lambda: _downstream_health(app)
    app[GUARD_INTERNAL] = False  # proxy() hides /internal/* from outside: 404, not the guard's 403
    app.router.add_route("*", "/{tail:.*}", proxy)


SPEC = ServiceSpec(name="gateway", setup_routes=setup_routes)
