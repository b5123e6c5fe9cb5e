"""OpenAPI 3.1 documents generated from an app's route table and the msgspec types of its routes.

A handler describes itself with `@api(...)`: its body type, query Struct, responses, who may
call it. The generator walks `app.router`, reads that metadata and lets msgspec emit the JSON
Schema of every type, so the document cannot drift from the code the way a hand-written one
would. A route without metadata is a bug (tests walk every router and fail on one).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
from aiohttp import web

OPENAPI_VERSION = "3.1.0"
API_VERSION = "0.1.0"
REF_PREFIX = "#/components/schemas/"
INT64_MAX = 2**63 - 1
ATTRIBUTE = "__openapi__"
F = TypeVar("F", bound=Callable[..., Any])


class Error(msgspec.Struct):
    """Every error answer: a message a person can read, sometimes details a program can use."""

    message: str
    details: Any = None


@dataclass(frozen=True)
class Raw:
    """A response that is not JSON (the metrics text, the docs page)."""

    media_type: str


ERROR_REASONS = {
    400: "Bad request: malformed JSON, a wrong field type, a bad parameter",
    401: "Missing, invalid, expired or revoked bearer token",
    402: "Payment required",
    403: "Authenticated, but not allowed",
    404: "Not found",
    409: "Conflict with the current state",
    413: "Request body too large",
    429: "Too many requests from this client (see Retry-After)",
    503: "Service overloaded or unavailable (see Retry-After)",
    504: "An internal call did not answer in time",
}


@dataclass(frozen=True)
class Operation:
    """What the document says about one handler. See `api`."""

    summary: str = ""
    body: Any = None
    body_required: bool = True
    query: type | None = None
    path: dict[str, Any] = field(default_factory=dict)
    responses: dict[int, Any] = field(default_factory=dict)
    auth: bool | str | tuple[str, ...] = False
    internal: bool = False
    rate_limited: bool = True
    hidden: bool = False  # e.g. the gateway's catch-all proxy: the services document its paths

    @property
    def roles(self) -> tuple[str, ...]:
        if isinstance(self.auth, str):
            return (self.auth,)
        return self.auth if isinstance(self.auth, tuple) else ()


def api(*, summary: str = "", body: Any = None, body_required: bool = True, query: type | None = None,
        path: dict[str, Any] | None = None, responses: dict[int, Any] | None = None,
        auth: bool | str | tuple[str, ...] = False, internal: bool = False, rate_limited: bool = True,
        hidden: bool = False) -> Callable[[F], F]:
    """Describe a handler for the OpenAPI document; the handler itself is returned unchanged.

    body: the msgspec type `read_json` decodes; query: a Struct whose fields are the query
    parameters; path: types of path parameters (default: positive integer); responses: status
    → type (None: no schema, `Raw(media_type)`: not JSON); auth: False public, True any valid
    token, a role or a tuple of roles. Usual error answers (400, 401, 403, 404, 413, 429, 503,
    504) are added from what the route takes; list others (409, a 403 of an ownership check).
    """
    operation = Operation(summary=summary, body=body, body_required=body_required, query=query,
                          path=dict(path or {}), responses=dict(responses or {}), auth=auth,
                          internal=internal, rate_limited=rate_limited, hidden=hidden)

    def mark(handler: F) -> F:
        setattr(handler, ATTRIBUTE, operation)
        return handler

    return mark


def operation_of(handler: Any) -> Operation | None:
    return getattr(handler, ATTRIBUTE, None)


def documented_routes(app: web.Application) -> Iterable[tuple[str, str, Any]]:
    """(method, path, handler) of every route a client can call (HEAD twins of GETs left out)."""
    for route in app.router.routes():
        if route.method in ("HEAD", "OPTIONS") or route.resource is None:
            continue
        yield route.method, route.resource.canonical, route.handler


def undocumented_routes(app: web.Application) -> list[str]:
    return [f"{method} {path}" for method, path, handler in documented_routes(app)
            if operation_of(handler) is None]


# -- generation ------------------------------------------------------------------------------

def build_document(app: web.Application, service: str, *, include_internal: bool = True) -> dict[str, Any]:
    """The OpenAPI document of one service's app. Raises if a route carries no `@api`."""
    missing = undocumented_routes(app)
    if missing:
        raise LookupError(f"routes without @api metadata: {', '.join(missing)}")
    entries = []
    for method, path, handler in documented_routes(app):
        operation = operation_of(handler)
        assert operation is not None
        if operation.hidden or (operation.internal and not include_internal):
            continue
        entries.append((method, path, handler.__name__, operation))
    types = _types_of(op for *_, op in entries)
    type_schemas, components = msgspec.json.schema_components(types, ref_template=REF_PREFIX + "{name}")
    schema_of = dict(zip(types, type_schemas, strict=True))
    queries = {op.query for *_, op in entries if op.query is not None}
    query_components = {q: components.pop(schema_of[q]["$ref"][len(REF_PREFIX):]) for q in queries}
    paths: dict[str, dict[str, Any]] = {}
    seen_ids: set[str] = set()
    for method, path, name, operation in entries:
        operation_id = f"{service}.{name}"
        if operation_id in seen_ids:
            operation_id = f"{operation_id}.{method.lower()}"
        seen_ids.add(operation_id)
        query_schema = query_components.get(operation.query) if operation.query else None
        paths.setdefault(path, {})[method.lower()] = _operation(
            service, method, path, operation_id, operation, schema_of, query_schema)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": f"MicroCommerce {service} service", "version": API_VERSION},
        "paths": paths,
        "components": {"schemas": dict(sorted(components.items())), "securitySchemes": SECURITY_SCHEMES},
    }


SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                   "description": "Token from POST /auth/login"},
    "internalToken": {"type": "apiKey", "in": "header", "name": "X-Internal-Token",
                      "description": "The service token internal callers carry"},
}


def _types_of(operations: Iterable[Operation]) -> list[Any]:
    found: list[Any] = [Error]
    for op in operations:
        candidates = [op.body, op.query, *op.responses.values(), *op.path.values()]
        for kind in candidates:
            if kind is not None and not isinstance(kind, Raw) and kind not in found:
                found.append(kind)
    return found


def _operation(service: str, method: str, path: str, operation_id: str, op: Operation,
               schema_of: dict[Any, Any], query_schema: dict[str, Any] | None) -> dict[str, Any]:
    result: dict[str, Any] = {"operationId": operation_id, "tags": [service]}
    if op.summary:
        result["summary"] = op.summary
    parameters = _path_parameters(path, op, schema_of) + _query_parameters(query_schema)
    if parameters:
        result["parameters"] = parameters
    if op.body is not None:
        result["requestBody"] = {"required": op.body_required,
                                 "content": {"application/json": {"schema": schema_of[op.body]}}}
    if op.internal:
        result["security"] = [{"internalToken": []}]
        result["x-internal"] = True
    elif op.auth:
        result["security"] = [{"bearerAuth": []}]
    if op.roles:
        result["x-roles"] = list(op.roles)
        result["description"] = f"Requires role: {' or '.join(op.roles)}."
    result["responses"] = _responses(op, parameters, schema_of)
    return result


def _path_parameters(path: str, op: Operation, schema_of: dict[Any, Any]) -> list[dict[str, Any]]:
    names = re.findall(r"\{([^}:]+)(?::[^}]*)?\}", path)
    params = []
    for name in names:
        kind = op.path.get(name)
        schema = schema_of[kind] if kind is not None else {
            "type": "integer", "minimum": 1, "maximum": INT64_MAX}
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return params


def _query_parameters(query_schema: dict[str, Any] | None) -> list[dict[str, Any]]:
    if query_schema is None:
        return []
    required = set(query_schema.get("required", ()))
    params = []
    for name, schema in query_schema.get("properties", {}).items():
        params.append({"name": name, "in": "query", "required": name in required,
                       "schema": _without_null(schema)})
    return params


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or a string; `None` in its Struct only means "absent"."""
    schema = {k: v for k, v in schema.items() if not (k == "default" and v is None)}
    options = schema.get("anyOf")
    if options:
        kept = [o for o in options if o != {"type": "null"}]
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        schema = {**rest, **kept[0]} if len(kept) == 1 else {**rest, "anyOf": kept}
    return schema


def _responses(op: Operation, parameters: list[dict[str, Any]], schema_of: dict[Any, Any]) -> dict[str, Any]:
    statuses: dict[int, Any] = dict(op.responses)
    error_statuses = set()
    if op.body is not None or parameters:
        error_statuses.add(400)
    if op.body is not None:
        error_statuses.add(413)
    if op.auth:
        error_statuses.add(401)
    if op.roles or op.internal:
        error_statuses.add(403)
    if any(p["in"] == "path" for p in parameters):
        error_statuses.add(404)
    if op.rate_limited:
        error_statuses |= {429, 503, 504}
    for status in error_statuses:
        statuses.setdefault(status, Error)
    out: dict[str, Any] = {}
    for status in sorted(statuses):
        kind = statuses[status]
        entry: dict[str, Any] = {"description": ERROR_REASONS.get(status, _success_reason(status))}
        if isinstance(kind, Raw):
            entry["content"] = {kind.media_type: {"schema": {"type": "string"}}}
        elif kind is not None:
            entry["content"] = {"application/json": {"schema": schema_of[kind]}}
        out[str(status)] = entry
    return out


def _success_reason(status: int) -> str:
    return {200: "OK", 201: "Created", 204: "No content"}.get(status, "Answer")


# -- the gateway's document: the public routes of every service ---------------------------------

def merge_documents(documents: dict[str, dict[str, Any]], owns: Callable[[str, str], bool],
                    *, title: str = "MicroCommerce API") -> dict[str, Any]:
    """One document from the services' documents: their public paths (those `owns(service,
    path)` says the gateway routes to that service), never `/internal/*`. Same-named schemas
    that differ are renamed `<Service><Name>` in the document they come from."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for service, document in sorted(documents.items()):
        document = copy.deepcopy(document)
        renames = {}
        for name, schema in document.get("components", {}).get("schemas", {}).items():
            if name in schemas and schemas[name] != schema:
                renames[name] = f"{service.capitalize()}{name}"
        if renames:
            document = _rename_refs(document, renames)
            own = document["components"]["schemas"]
            for old, new in renames.items():
                own[new] = own.pop(old)
        for path, item in document.get("paths", {}).items():
            if path.startswith("/internal/") or not owns(service, path):
                continue
            public = {m: op for m, op in item.items() if not op.get("x-internal")}
            if public:
                paths.setdefault(path, {}).update(public)
        schemas.update(document.get("components", {}).get("schemas", {}))
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": API_VERSION},
        "paths": paths,
        "components": {"schemas": dict(sorted(schemas.items())), "securitySchemes": SECURITY_SCHEMES},
    }


def _rename_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(REF_PREFIX):
                name = value[len(REF_PREFIX):]
                value = REF_PREFIX + renames.get(name, name)
            out[key] = _rename_refs(value, renames)
        return out
    if isinstance(node, list):
        return [_rename_refs(v, renames) for v in node]
    return node


def add_gateway_errors(document: dict[str, Any]) -> dict[str, Any]:
    """The gateway checks a bearer token on every route it forwards (a bad one is 401 before the
    hop) and answers 503/504 for a service that is down or slow: every operation may say so."""
    error = {"application/json": {"schema": {"$ref": REF_PREFIX + "Error"}}}
    for item in document["paths"].values():
        for operation in item.values():
            for status in (401, 503, 504):
                operation["responses"].setdefault(
                    str(status), {"description": ERROR_REASONS[status], "content": error})
    return document
