"""Order service (port 3003): orders, their items, a user projection and the order saga."""

from __future__ import annotations

from pathlib import Path

from microcommerce.services import ServiceSpec
from microcommerce.services.order.actor import OrderActor
from microcommerce.services.order.routes import setup_routes

SPEC = ServiceSpec(
    name="order",
    logic=OrderActor,
    setup_routes=setup_routes,
    schema_dir=Path(__file__).parent / "schema",
)
