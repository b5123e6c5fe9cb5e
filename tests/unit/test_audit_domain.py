"""Audit rules: what a record says about each kind of event, and log query validation."""

import json

import pytest

from microcommerce.contracts import registry  # noqa: F401
from microcommerce.contracts.events import known_event_types
from microcommerce.errors import BadRequest
from microcommerce.services.audit import domain
from microcommerce.services.audit.actor import AuditActor

AT = "2026-02-15T12:00:00.000Z"


def record(event_type: str, topic: str, data: dict, producer: str = "order-service"):
    return domain.build_record(event_type=event_type, event_id="e-1", producer=producer,
                               occurred_at=AT, topic=topic, data=data)


def http(status: int, **extra) -> dict:
    return {"service": "user", "method": "POST", "path": "/auth/signup", "status": status,
            "durationMs": 3.2, "requestId": "r1", "ip": "127.0.0.1", **extra}


def test_the_consumer_handles_every_registered_event_type():
    assert AuditActor.handled_event_types() == set(known_event_types())
    assert "HTTP_ACTIVITY" in AuditActor.handled_event_types()


def test_service_name_drops_the_service_suffix():
    assert domain.service_name("order-service") == "order"
    assert domain.service_name("test-producer") == "test-producer"


@pytest.mark.parametrize("topic, event_type, data, expected", [
    ("audit-events", "HTTP_ACTIVITY", {"actorUserId": 4, "userId": 9}, 4),
    ("audit-events", "HTTP_ACTIVITY", {"actorUserId": None}, None),
    ("order-events", "ORDER_CREATED", {"id": 3, "userId": 9}, 9),
    ("payment-events", "PAYMENT_FAILED", {"id": 3, "userId": 8}, 8),
    ("user-events", "USER_CREATED", {"id": 5, "role": "user"}, 5),
    ("user-events", "PASSWORD_RESET_REQUESTED", {"userId": 6}, 6),
    ("product-events", "PRODUCT_CREATED", {"id": 7, "createdBy": 2}, 2),
    ("product-events", "PRODUCT_DELETED", {"id": 7}, None),
    ("inventory-events", "STOCK_RESERVED", {"productId": 7, "orderId": 3}, None),
    ("order-events", "ORDER_CREATED", {"userId": "not-an-id"}, None),
])
def test_actor_user_id(topic, event_type, data, expected):
    assert domain.actor_user_id(topic, event_type, data) == expected


def test_actor_role_from_http_caller_or_user_event():
    assert domain.actor_role("audit-events", "HTTP_ACTIVITY", {"actorRole": "admin"}) == "admin"
    assert domain.actor_role("user-events", "USER_UPDATED", {"role": "supplier"}) == "supplier"
    assert domain.actor_role("order-events", "ORDER_PAID", {"role": "user"}) is None


@pytest.mark.parametrize("event_type, data, expected", [
    ("ORDER_CREATED", {}, "info"),
    ("PAYMENT_FAILED", {}, "warning"),
    ("ORDER_CANCELLED", {}, "warning"),
    ("STOCK_RELEASED", {"reason": "expired"}, "warning"),
    ("STOCK_RELEASED", {"reason": "cancelled"}, "info"),
    ("HTTP_ACTIVITY", {"status": 201}, "info"),
    ("HTTP_ACTIVITY", {"status": 399}, "info"),
    ("HTTP_ACTIVITY", {"status": 404}, "warning"),
    ("HTTP_ACTIVITY", {"status": 500}, "error"),
    ("HTTP_ACTIVITY", {"status": 503}, "error"),
])
def test_severity(event_type, data, expected):
    assert domain.severity(event_type, data) == expected


def test_http_record():
    rec = record("HTTP_ACTIVITY", "audit-events", http(201), producer="user-service")
    assert (rec.logType, rec.serviceName, rec.httpMethod, rec.httpStatus, rec.path) == (
        "http", "user", "POST", 201, "/auth/signup")
    assert (rec.actorUserId, rec.actorRole, rec.severity) == (None, None, "info")
    assert rec.summary == "POST /auth/signup -> 201 on the user service by an anonymous caller"
    assert json.loads(rec.payload)["requestId"] == "r1"
    admin = record("HTTP_ACTIVITY", "audit-events", http(403, actorUserId=1, actorRole="admin"))
    assert (admin.actorUserId, admin.actorRole, admin.severity) == (1, "admin", "warning")
    assert admin.summary.endswith("by user #1 (admin)")


def test_event_record():
    data = {"id": 12, "userId": 3, "status": "cancelled", "items": [], "totalAmount": 20.5,
            "currency": "USD", "reason": "expired"}
    rec = record("ORDER_CANCELLED", "order-events", data)
    assert (rec.logType, rec.serviceName, rec.eventType, rec.eventId) == (
        "event", "order", "ORDER_CANCELLED", "e-1")
    assert (rec.actorUserId, rec.severity, rec.httpMethod, rec.httpStatus, rec.path) == (
        3, "warning", None, None, None)
    assert rec.summary == "Order #12 of user #3 cancelled (expired)"
    assert json.loads(rec.payload) == data
    assert rec.occurredAt == AT


def test_summaries_format_money_and_survive_missing_fields():
    assert domain.summarize("PAYMENT_SUCCEEDED", "payment", {
        "id": 4, "orderId": 9, "amount": 20, "currency": "EUR", "provider": "stripe",
    }) == "Payment #4 for order #9 succeeded: 20.00 EUR via stripe"
    assert domain.summarize("PAYMENT_FAILED", "payment", {"id": 4, "orderId": 9}) == \
        "Payment #4 for order #9 failed"
    assert domain.summarize("STOCK_UPDATED", "inventory", {"productId": 2}) == \
        "Stock of product #2 set to ? (available ?)"
    assert domain.summarize("SOMETHING_NEW", "shipping", {"id": 1}) == \
        "SOMETHING_NEW from the shipping service"
    assert len(domain.summarize("PRODUCT_DELETED", "p", {"id": "9" * 1000})) == domain.MAX_SUMMARY


SPEC_EVENTS = [
    "USER_CREATED", "USER_UPDATED", "USER_DELETED", "USER_PASSWORD_CHANGED", "PASSWORD_RESET_REQUESTED",
    "PRODUCT_CREATED", "PRODUCT_UPDATED", "PRODUCT_DELETED", "ORDER_CREATED", "ORDER_PAID",
    "ORDER_SHIPPED", "ORDER_DELIVERED", "ORDER_CANCELLED", "STOCK_RESERVED", "STOCK_RELEASED",
    "STOCK_CONFIRMED", "STOCK_UPDATED", "PAYMENT_CREATED", "PAYMENT_SUCCEEDED", "PAYMENT_FAILED",
    "PAYMENT_REFUNDED", "HTTP_ACTIVITY",
]


@pytest.mark.parametrize("name", SPEC_EVENTS)
def test_every_spec_event_type_gets_a_specific_summary(name):
    assert "from the x service" not in domain.summarize(name, "x", {})


def test_secrets_are_redacted_from_the_payload():
    data = {"userId": 1, "email": "a@b.c", "otp": "123456", "nested": [{"Password": "pw"}]}
    rec = record("PASSWORD_RESET_REQUESTED", "user-events", data, producer="user-service")
    payload = json.loads(rec.payload)
    assert payload["otp"] == "[redacted]" and payload["nested"][0]["Password"] == "[redacted]"
    assert payload["email"] == "a@b.c" and "123456" not in rec.payload


def test_normalize_time():
    assert domain.normalize_time("2026-02-15T14:00:00+02:00") == "2026-02-15T12:00:00.000Z"
    assert domain.normalize_time("2026-02-15") == "2026-02-15T00:00:00.000Z"
    assert domain.normalize_time("yesterday") is None


def test_audit_filters_defaults_and_normalization():
    filters = domain.audit_filters()
    assert (filters.page, filters.limit, filters.offset) == (1, 50, 0)
    filters = domain.audit_filters(page=3, limit=10, log_type="HTTP", service_name="Order",
                                   actor_role="Admin", severity="WARNING", http_method="post",
                                   event_type="order_paid", occurred_from="2026-02-15T00:00:00Z",
                                   occurred_to="2026-02-16T00:00:00+00:00", q=" Signup ")
    assert filters.offset == 20
    assert (filters.log_type, filters.service_name, filters.actor_role) == ("http", "order", "admin")
    assert (filters.severity, filters.http_method, filters.event_type) == ("warning", "POST", "ORDER_PAID")
    assert (filters.occurred_from, filters.occurred_to) == ("2026-02-15T00:00:00.000Z",
                                                          "2026-02-16T00:00:00.000Z")
    assert filters.q == "signup"


@pytest.mark.parametrize("kwargs, message", [
    ({"page": 0}, "page"),
    ({"limit": 0}, "limit"),
    ({"limit": 201}, "limit"),
    ({"actor_user_id": 0}, "actorUserId"),
    ({"http_status": 99}, "httpStatus"),
    ({"http_status": 600}, "httpStatus"),
    ({"log_type": "debug"}, "logType"),
    ({"severity": "fatal"}, "severity"),
    ({"actor_role": "root"}, "actorRole"),
    ({"http_method": "BREW"}, "httpMethod"),
    ({"service_name": "no spaces"}, "serviceName"),
    ({"event_type": "x" * 101}, "eventType"),
    ({"occurred_from": "yesterday"}, "from"),
    ({"occurred_to": "2026-13-01"}, "to"),
    ({"occurred_from": "2026-02-16", "occurred_to": "2026-02-15"}, "from"),
    ({"q": "x" * 201}, "q"),
])
def test_audit_filters_reject_bad_values(kwargs, message):
    with pytest.raises(BadRequest) as err:
        domain.audit_filters(**kwargs)
    assert message in err.value.message
