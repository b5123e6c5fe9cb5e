"""Search service (port 3006): a product search index fed by product and inventory events."""

from __future__ import annotations

from pathlib import Path

from microcommerce.services import ServiceSpec
from microcommerce.services.search.actor import SearchActor
from microcommerce.services.search.routes import setup_routes

SPEC = ServiceSpec(
    name="search",
    logic=SearchActor,
    setup_routes=setup_routes,
    schema_dir=Path(__file__).parent / "schema",
)
