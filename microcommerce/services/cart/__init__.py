"""Cart service (port 3002): carts and their items, a projection of users from user-events."""

from __future__ import annotations

from pathlib import Path

from microcommerce.services import ServiceSpec
from microcommerce.services.cart.actor import CartActor
from microcommerce.services.cart.routes import setup_routes

SPEC = ServiceSpec(
    name="cart",
    logic=CartActor,
    setup_routes=setup_routes,
    schema_dir=Path(__file__).parent / "schema",
)
