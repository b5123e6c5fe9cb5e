"""HTTP routes of the search service: public product search over the read model."""

from __future__ import annotations

import msgspec
from aiohttp import web

from microcommerce.http.app import ask
from microcommerce.http.body import json_response, query_value
from microcommerce.http.openapi import api
from microcommerce.services.search import domain
from microcommerce.services.search.messages import SearchPage, SearchProducts


class SearchQuery(msgspec.Struct):
    q: str | None = None
    categoryId: int | None = None
    minPrice: float | None = None
    maxPrice: float | None = None
    inStock: bool | None = None
    page: int | None = None
    pageSize: int | None = None


@api(summary="Search products by text, category, price and stock", query=SearchQuery,
     responses={200: SearchPage})
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
