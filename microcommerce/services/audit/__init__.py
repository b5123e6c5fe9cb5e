"""Audit service (port 3009): one record per domain event and per reported HTTP activity."""

from __future__ import annotations

from pathlib import Path

from microcommerce.services import ServiceSpec
from microcommerce.services.audit.actor import AuditActor
from microcommerce.services.audit.routes import setup_routes

SPEC = ServiceSpec(
    name="audit",
    logic=AuditActor,
    setup_routes=setup_routes,
    schema_dir=Path(__file__).parent / "schema",
)
