"""Inventory service (port 3005): stock per product and the reservations of the order saga."""

from __future__ import annotations

from pathlib import Path

from microcommerce.services import ServiceSpec
from microcommerce.services.inventory.actor import InventoryActor
from microcommerce.services.inventory.routes import setup_routes

SPEC = ServiceSpec(
    name="inventory",
    logic=InventoryActor,
    setup_routes=setup_routes,
    schema_dir=Path(__file__).parent / "schema",
)
