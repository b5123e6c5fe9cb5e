"""`/openapi.json` and `/docs` on a real platform: each service's document, the gateway's merge."""

from __future__ import annotations

import re

from microcommerce.services.gateway import target_service

SERVICES = ["user", "cart", "order", "product", "inventory", "search", "payment", "notification", "audit"]


async def test_the_gateway_document_holds_every_public_route_of_every_service(platform) -> None:
    gateway = await platform.get("/openapi.json")
    assert gateway.status == 200, gateway
    merged = gateway.body["paths"]
    for service in SERVICES:
        own = await platform.get("/openapi.json", service=service)
        assert own.status == 200, (service, own)
        assert own.body["info"]["title"] == f"MicroCommerce {service} service"
        for path, item in own.body["paths"].items():
            for method, operation in item.items():
                public = not operation.get("x-internal") and target_service(path) == service
                if public:
                    assert method in merged.get(path, {}), f"{service}: {method.upper()} {path} missing"
                    for status, answer in operation["responses"].items():
                        assert merged[path][method]["responses"][status] == answer
                else:  # internal, or a path like /health the gateway answers itself
                    leaked = merged.get(path, {}).get(method, {}).get("operationId") == operation["operationId"]
                    assert not leaked, f"{service}: {method.upper()} {path} leaked"
    assert not [path for path in merged if path.startswith("/internal/")]
    assert {"/health", "/metrics", "/openapi.json", "/docs"} <= set(merged)
    # Every schema a gateway operation points at is in the gateway's components.
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', str(gateway.body).replace("'", '"')))
    assert refs <= set(gateway.body["components"]["schemas"])


async def test_service_documents_mark_their_internal_routes(platform) -> None:
    reply = await platform.get("/openapi.json", service="inventory")
    reserve = reply.body["paths"]["/internal/reservations"]["post"]
    assert reserve["x-internal"] is True
    assert reserve["security"] == [{"internalToken": []}]


async def test_the_docs_page_is_self_contained(platform) -> None:
    for service in ("gateway", "product"):
        reply = await platform.get("/docs", service=service)
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/html")
        assert 'fetch("openapi.json")' in reply.body
        # Offline: no script, style or font from elsewhere.
        assert not re.search(r'<(script|link)[^>]+(src|href)="(https?:)?//', reply.body)
