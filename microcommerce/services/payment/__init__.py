"""Payment service (port 3007): payments against orders, mock providers stripe and paymob, refunds."""

from __future__ import annotations

from pathlib import Path

from microcommerce.services import ServiceSpec
from microcommerce.services.payment.actor import PaymentActor
from microcommerce.services.payment.routes import setup_routes

SPEC = ServiceSpec(
    name="payment",
    logic=PaymentActor,
    setup_routes=setup_routes,
    schema_dir=Path(__file__).parent / "schema",
)
