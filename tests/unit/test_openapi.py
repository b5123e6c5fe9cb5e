"""The OpenAPI generator: valid 3.1 documents that list every route of every app."""

from __future__ import annotations

from typing import Annotated

import jsonschema_rs
import mc_testkit
import msgspec
import pytest
import schemathesis
from aiohttp import web

from microcommerce.http.app import create_app
from microcommerce.http.auth import Revocations, TokenIssuer
from microcommerce.http.openapi import (
    Error,
    api,
    build_document,
    documented_routes,
    merge_documents,
    operation_of,
    undocumented_routes,
)
from microcommerce.services import implemented_services, load_spec

SERVICES = implemented_services()


def service_app(name: str) -> web.Application:
    """The app of a service as `Node` builds it (routes and middlewares; no actors needed to read it)."""
    settings = mc_testkit.test_settings([name])
    issuer = TokenIssuer(settings.jwt_secret, settings.jwt_ttl_s, Revocations())
    return create_app(name, settings, issuer, setup_routes=load_spec(name).setup_routes)


@pytest.mark.parametrize("service", SERVICES)
def test_every_route_of_every_app_carries_metadata(service: str) -> None:
    """A new route without `@api` fails here, so nothing can be left out of the document."""
    assert undocumented_routes(service_app(service)) == []


@pytest.mark.parametrize("service", SERVICES)
def test_the_document_lists_every_route(service: str) -> None:
    app = service_app(service)
    document = build_document(app, service)
    for method, path, handler in documented_routes(app):
        if operation_of(handler).hidden:  # the gateway's catch-all proxy
            continue
        assert method.lower() in document["paths"].get(path, {}), f"{method} {path} missing"
        operation = document["paths"][path][method.lower()]
        assert operation["responses"], f"{method} {path} documents no response"


@pytest.mark.parametrize("service", SERVICES)
def test_the_document_is_valid_openapi_3_1(service: str) -> None:
    document = build_document(service_app(service), service)
    assert document["openapi"].startswith("3.1.")
    schemathesis.openapi.from_dict(document).validate()  # the OpenAPI 3.1 meta-schema
    for name, schema in document["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), name  # each is valid JSON Schema 2020-12
    assert "Error" in document["components"]["schemas"]


def test_internal_routes_are_marked_and_can_be_left_out() -> None:
    app = service_app("product")
    full = build_document(app, "product")
    internal = full["paths"]["/internal/products/{id}"]["get"]
    assert internal["x-internal"] is True
    assert internal["security"] == [{"internalToken": []}]
    public = build_document(app, "product", include_internal=False)
    assert not [path for path in public["paths"] if path.startswith("/internal/")]


def test_parameters_bodies_auth_and_errors_come_from_the_metadata() -> None:
    document = build_document(service_app("product"), "product")
    create = document["paths"]["/products"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ProductBody"}
    assert create["security"] == [{"bearerAuth": []}]
    assert create["x-roles"] == ["admin", "supplier"]
    assert {"201", "400", "401", "403", "413"} <= set(create["responses"])
    error_schema = create["responses"]["400"]["content"]["application/json"]["schema"]
    assert error_schema == {"$ref": "#/components/schemas/Error"}
    listing = document["paths"]["/products"]["get"]
    params = {p["name"]: p for p in listing["parameters"]}
    assert params["page"] == {"name": "page", "in": "query", "required": False, "schema": {"type": "integer"}}
    assert "security" not in listing
    one = document["paths"]["/products/{id}"]["get"]
    assert one["parameters"][0]["in"] == "path"
    assert one["parameters"][0]["schema"]["type"] == "integer"
    assert "404" in one["responses"]


def test_a_route_without_metadata_is_refused() -> None:
    async def forgotten(request: web.Request) -> web.Response:
        return web.Response()

    class Thing(msgspec.Struct):
        id: Annotated[int, msgspec.Meta(gt=0)]

    @api(responses={200: Thing, 404: Error})
    async def described(request: web.Request) -> web.Response:
        return web.Response()

    app = web.Application()
    app.router.add_get("/things/{id}", described)
    app.router.add_post("/things", forgotten)
    assert undocumented_routes(app) == ["POST /things"]
    with pytest.raises(LookupError, match="POST /things"):
        build_document(app, "things")


def test_merging_keeps_owned_public_paths_and_renames_clashing_schemas() -> None:
    def document(path: str, schema: dict, internal: bool = False) -> dict:
        op = {"responses": {"200": {"description": "OK", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/View"}}}}}}
        if internal:
            op["x-internal"] = True
        return {"paths": {path: {"get": op}}, "components": {"schemas": {"View": schema}}}

    merged = merge_documents(
        {"a": document("/a/x", {"type": "object"}), "b": document("/b/x", {"type": "string"}),
         "c": document("/internal/c", {"type": "object"}, internal=True)},
        owns=lambda service, path: path.startswith(f"/{service}/"))
    assert set(merged["paths"]) == {"/a/x", "/b/x"}
    b_ref = merged["paths"]["/b/x"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert b_ref == {"$ref": "#/components/schemas/BView"}
    assert merged["components"]["schemas"]["View"] == {"type": "object"}
    assert merged["components"]["schemas"]["BView"] == {"type": "string"}
