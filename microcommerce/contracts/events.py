"""The event envelope (SPEC section 4) and the registry that types each event's `data`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from microcommerce import environment

USER_EVENTS = "user-events"
PRODUCT_EVENTS = "product-events"
ORDER_EVENTS = "order-events"
INVENTORY_EVENTS = "inventory-events"
PAYMENT_EVENTS = "payment-events"
NOTIFICATION_EVENTS = "notification-events"
AUDIT_EVENTS = "audit-events"


class EventEnvelope(msgspec.Struct, kw_only=True):
    eventId: str
    eventType: str
    eventVersion: int = 1
    occurredAt: str
    producer: str
    data: Any


class EventType(msgspec.Struct):
    """Where an event type travels and what its data looks like."""

    name: str
    topic: str
    data_type: type


_REGISTRY: dict[str, EventType] = {}


def register_event(name: str, topic: str, data_type: type) -> None:
    _REGISTRY[name] = EventType(name, topic, data_type)


def event_type(name: str) -> EventType:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown event type {name!r}") from None


def known_event_types() -> dict[str, EventType]:
    return dict(_REGISTRY)


def utc_now_iso() -> str:
    """ISO-8601 UTC with milliseconds, the one timestamp format used everywhere (sorts as text)."""
    return iso_from_epoch(environment.now())


def iso_from_epoch(seconds: float) -> str:
    dt = datetime.fromtimestamp(seconds, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def new_event(event_name: str, producer: str, data: msgspec.Struct) -> EventEnvelope:
    return EventEnvelope(
        eventId=environment.new_uuid(),
        eventType=event_name,
        occurredAt=utc_now_iso(),
        producer=producer,
        data=data,
    )


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(EventEnvelope)


def encode_event(envelope: EventEnvelope) -> bytes:
    return _encoder.encode(envelope)


def decode_event(raw: bytes | str) -> EventEnvelope:
    """Decode an envelope and type its data; unknown event types keep their data as a dict."""
    envelope = _decoder.decode(raw)
    known = _REGISTRY.get(envelope.eventType)
    if known is not None and isinstance(envelope.data, dict):
        envelope.data = msgspec.convert(envelope.data, known.data_type)
    return envelope
