"""Notification service (port 3008): one record per channel per event, mock senders, dev outbox."""

from __future__ import annotations

from pathlib import Path

from microcommerce.services import ServiceSpec
from microcommerce.services.notification.actor import NotificationActor
from microcommerce.services.notification.routes import setup_routes

SPEC = ServiceSpec(
    name="notification",
    logic=NotificationActor,
    setup_routes=setup_routes,
    schema_dir=Path(__file__).parent / "schema",
)
