"""The Kafka adapter of the event bus port (BUS_URL=kafka://host:port[,host:port])."""

from __future__ import annotations

from microcommerce.config import Settings
from microcommerce.kafka.bus import KafkaBus


def open_kafka_bus(settings: Settings) -> KafkaBus:
    """The bus for `settings.bus_url` (kafka://…); connect with `start()` (Node does)."""
    return KafkaBus(settings)


__all__ = ["KafkaBus", "open_kafka_bus"]
