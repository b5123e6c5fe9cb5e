"""Product service (port 3004): categories, products, product images; the optional demo catalog."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from microcommerce.services import ServiceSpec
from microcommerce.services.product import domain
from microcommerce.services.product.actor import ProductActor
from microcommerce.services.product.messages import (
    CatalogCounts,
    CatalogSize,
    CreateCategory,
    CreateProduct,
)
from microcommerce.services.product.routes import setup_routes

if TYPE_CHECKING:
    from microcommerce.actors.system import ActorSystem
    from microcommerce.node import Node

log = logging.getLogger(__name__)

# (category, description, [(name, description, price in cents, stock)])
DEMO_CATALOG: list[tuple[str, str, list[tuple[str, str, int, int]]]] = [
    ("Books", "Printed and bound", [
        ("Dune", "Frank Herbert's desert planet epic", 12_50, 40),
        ("The Pragmatic Programmer", "From journeyman to master", 39_99, 25),
    ]),
    ("Shoes", "For walking and running", [
        ("Trail Runner", "Grippy running shoe for rough ground", 89_00, 30),
        ("Canvas Sneaker", "Light everyday sneaker", 45_00, 50),
    ]),
    ("Kitchen", "Cook and serve", [
        ("Chef's Knife", "20 cm stainless steel blade", 64_90, 15),
        ("Cast Iron Pan", "26 cm, pre-seasoned", 34_95, 20),
    ]),
]


async def seed_demo_catalog(node: Node) -> dict[str, Any]:
    """With `--demo-catalog` and an empty catalog, create a few categories and products.

    Everything goes through the actor, so PRODUCT_CREATED reaches inventory and search as usual.
    """
    if not node.settings.demo_catalog:
        return {"seeded": False, "reason": "disabled"}
    system = node.system("product")
    counts: CatalogCounts = await system.ask(CatalogSize())
    if counts.categories or counts.products:
        return {"seeded": False, "reason": "catalog not empty"}
    products = 0
    for category_name, category_description, items in DEMO_CATALOG:
        products += await _seed_category(system, category_name, category_description, items)
    summary = {"seeded": True, "categories": len(DEMO_CATALOG), "products": products}
    log.info("demo catalog: %d categories, %d products", len(DEMO_CATALOG), products)
    return summary


async def _seed_category(system: ActorSystem, name: str, description: str,
                         items: list[tuple[str, str, int, int]]) -> int:
    category = await system.ask(CreateCategory(name=name, slug=domain.slugify(name), description=description))
    for product_name, product_description, price_cents, stock in items:
        await system.ask(CreateProduct(
            category_id=category.id, name=product_name, description=product_description,
            price_cents=price_cents, currency=domain.DEFAULT_CURRENCY, stock_quantity=stock, images=[],
            created_by=None,
        ))
    return len(items)


SPEC = ServiceSpec(
    name="product",
    logic=ProductActor,
    setup_routes=setup_routes,
    schema_dir=Path(__file__).parent / "schema",
    on_ready=seed_demo_catalog,
)
