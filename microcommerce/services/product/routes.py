"""HTTP routes of the product service: bodies and queries validated here, rules in `domain`."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web
from msgspec import UNSET, UnsetType

from microcommerce.contracts.product import GetProduct, ProductInfo
from microcommerce.errors import NotFound
from microcommerce.http.app import ask
from microcommerce.http.auth import require_role
from microcommerce.http.body import (
    MAX_PAGE,
    int_param,
    json_response,
    query_int,
    query_value,
    read_json,
)
from microcommerce.http.openapi import Error, api
from microcommerce.services.product import domain
from microcommerce.services.product.domain import ImageInput
from microcommerce.services.product.messages import (
    CategoryView,
    CreateCategory,
    CreateProduct,
    DeleteProduct,
    GetProductView,
    ListCategories,
    ListProducts,
    ProductFilter,
    ProductPage,
    ProductView,
    UpdateProduct,
)

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Description = Annotated[str, msgspec.Meta(max_length=5000)]
Id = Annotated[int, msgspec.Meta(gt=0)]
Stock = Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)]
# Documentation only: `domain` checks these and says what is wrong in its own words.
Price = Annotated[float, msgspec.Meta(extra_json_schema={"exclusiveMinimum": 0,
                                                         "maximum": domain.MAX_PRICE_CENTS / 100})]
Currency = Annotated[str, msgspec.Meta(extra_json_schema={"pattern": "^[A-Za-z]{3}$"})]
Images = Annotated[list[str | ImageInput], msgspec.Meta(max_length=domain.MAX_IMAGES)]


class CategoryBody(msgspec.Struct):
    name: Name
    description: Description = ""


class ProductBody(msgspec.Struct):
    categoryId: Id
    name: Name
    price: Price
    stockQuantity: Stock
    description: Description = ""
    currency: Currency = domain.DEFAULT_CURRENCY
    images: Images = []


class ProductPatchBody(msgspec.Struct):
    """Every field optional; an explicit null is a type error (400), not "clear it"."""

    categoryId: Id | UnsetType = UNSET
    name: Name | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    price: Price | UnsetType = UNSET
    currency: Currency | UnsetType = UNSET
    stockQuantity: Stock | UnsetType = UNSET
    images: Images | UnsetType = UNSET


class ProductQuery(msgspec.Struct):
    categoryId: int | None = None
    minPrice: float | None = None
    maxPrice: float | None = None
    page: int | None = None
    pageSize: int | None = None
    q: str | None = None


class CategoryList(msgspec.Struct):
    items: list[CategoryView]


class Deleted(msgspec.Struct):
    message: str
    id: int


class Exists(msgspec.Struct):
    exists: bool


EDITORS = ("admin", "supplier")


# -- categories ----------------------------------------------------------------------------
@api(summary="Every category", responses={200: CategoryList})
async def list_categories(request: web.Request) -> web.Response:
    return json_response({"items": await ask(request, ListCategories())})


@api(summary="Create a category", auth="admin", body=CategoryBody,
     responses={201: CategoryView, 409: Error})
async def create_category(request: web.Request) -> web.Response:
    require_role(request, "admin")
    body = await read_json(request, CategoryBody)
    name = domain.clean_name(body.name)
    category = await ask(request, CreateCategory(name=name, slug=domain.slugify(name),
                                                 description=body.description.strip()))
    return json_response(category, 201)


# -- products ------------------------------------------------------------------------------
@api(summary="Products, filtered and paged", query=ProductQuery, responses={200: ProductPage})
async def list_products(request: web.Request) -> web.Response:
    category_id = _positive_query_int(request, "categoryId")
    min_cents = _price_bound(request, "minPrice")
    max_cents = _price_bound(request, "maxPrice")
    domain.check_price_range(min_cents, max_cents)
    page, page_size = domain.page_window(
        query_int(request, "page", 1, high=MAX_PAGE),
        query_int(request, "pageSize", domain.DEFAULT_PAGE_SIZE, high=domain.MAX_PAGE_SIZE))
    text = query_value(request, "q", str, "").strip() or None
    listing = ListProducts(filter=ProductFilter(category_id=category_id, text=text, min_cents=min_cents,
                                                max_cents=max_cents),
                           page=page, page_size=page_size)
    return json_response(await ask(request, listing))


@api(summary="One product", responses={200: ProductView})
async def get_product(request: web.Request) -> web.Response:
    product_id = int_param(request.match_info["id"], "id")
    return json_response(await ask(request, GetProductView(id=product_id)))


@api(summary="Create a product", auth=EDITORS, body=ProductBody,
     responses={201: ProductView, 404: Error, 409: Error})
async def create_product(request: web.Request) -> web.Response:
    principal = require_role(request, *EDITORS)
    body = await read_json(request, ProductBody)
    product = await ask(request, CreateProduct(
        category_id=body.categoryId, name=domain.clean_name(body.name), description=body.description.strip(),
        price_cents=domain.price_to_cents(body.price), currency=domain.normalize_currency(body.currency),
        stock_quantity=body.stockQuantity, images=domain.normalize_images(body.images),
        created_by=principal.id,
    ))
    return json_response(product, 201)


@api(summary="Change some fields of a product", auth=EDITORS, body=ProductPatchBody,
     responses={200: ProductView, 409: Error})
async def update_product(request: web.Request) -> web.Response:
    principal = require_role(request, *EDITORS)
    product_id = int_param(request.match_info["id"], "id")
    body = await read_json(request, ProductPatchBody)
    product = await ask(request, UpdateProduct(
        id=product_id, actor_id=principal.id, actor_role=principal.role,
        category_id=_given(body.categoryId),
        name=domain.clean_name(body.name) if body.name is not UNSET else None,
        description=body.description.strip() if body.description is not UNSET else None,
        price_cents=domain.price_to_cents(body.price) if body.price is not UNSET else None,
        currency=domain.normalize_currency(body.currency) if body.currency is not UNSET else None,
        stock_quantity=_given(body.stockQuantity),
        images=domain.normalize_images(body.images) if body.images is not UNSET else None,
    ))
    return json_response(product)


@api(summary="Delete a product", auth=EDITORS, responses={200: Deleted})
async def delete_product(request: web.Request) -> web.Response:
    principal = require_role(request, *EDITORS)
    product_id = int_param(request.match_info["id"], "id")
    await ask(request, DeleteProduct(id=product_id, actor_id=principal.id, actor_role=principal.role))
    return json_response({"message": "Product deleted", "id": product_id})


# -- internal (service token checked by the framework's internal guard) --------------------
@api(summary="A product's name, price and category", internal=True, responses={200: ProductInfo})
async def internal_product(request: web.Request) -> web.Response:
    product_id = int_param(request.match_info["id"], "id")
    return json_response(await ask(request, GetProduct(id=product_id)))


@api(summary="Whether a product exists", internal=True, responses={200: Exists})
async def internal_product_exists(request: web.Request) -> web.Response:
    product_id = int_param(request.match_info["id"], "id")
    try:
        await ask(request, GetProduct(id=product_id))
    except NotFound:
        return json_response({"exists": False})
    return json_response({"exists": True})


def _given(value: int | UnsetType) -> int | None:
    return None if value is UNSET else value


def _positive_query_int(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    return int_param(raw, name) if raw else None


def _price_bound(request: web.Request, name: str) -> int | None:
    if not request.query.get(name):
        return None
    return domain.optional_price_to_cents(query_value(request, name, float, 0.0), name)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/categories", list_categories)
    app.router.add_post("/categories", create_category)
    app.router.add_get("/products", list_products)
    app.router.add_post("/products", create_product)
    app.router.add_get("/products/{id}", get_product)
    app.router.add_patch("/products/{id}", update_product)
    app.router.add_delete("/products/{id}", delete_product)
    app.router.add_get("/internal/products/{id}", internal_product)
    app.router.add_get("/internal/products/{id}/exists", internal_product_exists)
