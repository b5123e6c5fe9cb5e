"""HTTP routes of the search service: public product search over the read model."""

from __future__ import annotations

from aiohttp import web

from microcommerce.http.app import ask
from microcommerce.http.body import json_response, query_value
from microcommerce.services.search import domain
from microcommerce.services.search.messages import SearchProducts


async def search_products(request: web.Request) -> web.Response:
    query = request.query
    filters = domain.search_filters(
        q=query.get("q"),
        category_id=query_value(request, "categoryId", int, None),
        min_price=query.get("minPrice"),
        max_price=query.get("maxPrice"),
        in_stock=query.get("inStock"),
        page=query_value(request, "page", int, None),
        page_size=query_value(request, "pageSize", int, None),
    )
    return json_response(await ask(request, SearchProducts(filters=filters)))


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/search/products", search_products)
