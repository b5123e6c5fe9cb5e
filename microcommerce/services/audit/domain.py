"""Audit rules without I/O: what one record says about an event, and what a valid log query is.

Derivations work on the event's data as plain JSON values, so an event type this service has
never heard of is still recorded (with a generic summary) instead of failing.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import msgspec

from microcommerce.contracts.audit import HTTP_ACTIVITY
from microcommerce.contracts.events import PRODUCT_EVENTS, USER_EVENTS
from microcommerce.errors import BadRequest

LOG_TYPES = ("event", "http")
SEVERITIES = ("info", "warning", "error")
ROLES = ("user", "admin", "supplier")
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_PAGE = 1_000_000
MAX_ID = 2**63 - 1
MAX_SUMMARY = 500
MAX_PATH = 1000
MAX_QUERY_LENGTH = 200
WARNING_EVENTS = ("PAYMENT_FAILED", "ORDER_CANCELLED")
# Secrets never belong in an audit trail an admin can read (e.g. the reset OTP in its event).
REDACTED_KEYS = frozenset({"otp", "password", "passwordhash", "token", "paymenttoken", "secret"})
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


class AuditRecord(msgspec.Struct, kw_only=True, frozen=True):
    logType: str
    serviceName: str
    eventType: str
    eventId: str
    actorUserId: int | None
    actorRole: str | None
    severity: str
    httpMethod: str | None
    httpStatus: int | None
    path: str | None
    summary: str
    payload: str
    occurredAt: str


# -- derivations -----------------------------------------------------------------------------

def service_name(producer: str) -> str:
    """"order-service" -> "order"."""
    return producer.removesuffix("-service")


def log_type(event_type: str) -> str:
    return "http" if event_type == HTTP_ACTIVITY else "event"


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def actor_user_id(topic: str, event_type: str, data: dict[str, Any]) -> int | None:
    """Whose record this is: the HTTP caller, the event's userId, the user itself, the product's creator."""
    if event_type == HTTP_ACTIVITY:
        return _int_or_none(data.get("actorUserId"))
    if "userId" in data:
        return _int_or_none(data["userId"])
    if topic == USER_EVENTS:
        return _int_or_none(data.get("id"))
    if topic == PRODUCT_EVENTS:
        return _int_or_none(data.get("createdBy"))
    return None


def actor_role(topic: str, event_type: str, data: dict[str, Any]) -> str | None:
    if event_type == HTTP_ACTIVITY:
        role = data.get("actorRole")
    elif topic == USER_EVENTS:
        role = data.get("role")
    else:
        role = None
    return role if isinstance(role, str) else None


def severity(event_type: str, data: dict[str, Any]) -> str:
    if event_type == HTTP_ACTIVITY:
        status = _int_or_none(data.get("status")) or 0
        return "error" if status >= 500 else "warning" if status >= 400 else "info"
    if event_type in WARNING_EVENTS:
        return "warning"
    if event_type == "STOCK_RELEASED" and data.get("reason") == "expired":
        return "warning"
    return "info"


def redact(value: Any) -> Any:
    """A copy of the data with secret-looking fields replaced by "[redacted]"."""
    if isinstance(value, dict):
        return {key: "[redacted]" if key.lower() in REDACTED_KEYS else redact(item)
                for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


_TEMPLATES = {
    "USER_CREATED": "User #{id} created ({email}, role {role})",
    "USER_UPDATED": "User #{id} updated ({email}, role {role}, {accountStatus})",
    "USER_DELETED": "User #{id} deleted ({email})",
    "USER_PASSWORD_CHANGED": "User #{id} changed their password",
    "USER_LOGGED_OUT": "User #{id} logged out",
    "PASSWORD_RESET_REQUESTED": "Password reset requested for user #{userId} ({email})",
    "PRODUCT_CREATED": "Product #{id} \"{name}\" created at {price} {currency}",
    "PRODUCT_UPDATED": "Product #{id} \"{name}\" updated ({price} {currency})",
    "PRODUCT_DELETED": "Product #{id} deleted",
    "ORDER_CREATED": "Order #{id} created for user #{userId}: {totalAmount} {currency}",
    "ORDER_PAID": "Order #{id} of user #{userId} paid: {totalAmount} {currency}",
    "ORDER_SHIPPED": "Order #{id} of user #{userId} shipped",
    "ORDER_DELIVERED": "Order #{id} of user #{userId} delivered",
    "ORDER_CANCELLED": "Order #{id} of user #{userId} cancelled{reason_note}",
    "STOCK_RESERVED": "Stock of product #{productId}: {quantity} reserved for order #{orderId}"
                      " (available {availableQuantity})",
    "STOCK_RELEASED": "Stock of product #{productId}: {quantity} released from order #{orderId}"
                      "{reason_note} (available {availableQuantity})",
    "STOCK_CONFIRMED": "Stock of product #{productId}: {quantity} sold to order #{orderId}"
                       " (available {availableQuantity})",
    "STOCK_UPDATED": "Stock of product #{productId} set to {totalQuantity}"
                     " (available {availableQuantity})",
    "PAYMENT_CREATED": "Payment #{id} for order #{orderId} created: {amount} {currency} via {provider}",
    "PAYMENT_SUCCEEDED": "Payment #{id} for order #{orderId} succeeded: {amount} {currency}"
                         " via {provider}",
    "PAYMENT_FAILED": "Payment #{id} for order #{orderId} failed{reason_note}",
    "PAYMENT_REFUNDED": "Payment #{id} for order #{orderId} refunded: {amount} {currency}",
}
_MONEY_FIELDS = ("price", "amount", "totalAmount")


class _Fields(dict):
    """format_map values: a field the event lacks shows as "?" instead of failing."""

    def __missing__(self, key: str) -> str:
        return "?"


def _template_fields(data: dict[str, Any]) -> _Fields:
    fields = _Fields(data)
    for name in _MONEY_FIELDS:
        if isinstance(data.get(name), int | float):
            fields[name] = f"{data[name]:.2f}"
    reason = data.get("reason") or data.get("failureReason")
    fields["reason_note"] = f" ({reason})" if reason else ""
    return fields


def _http_summary(data: dict[str, Any]) -> str:
    who = (f"user #{data['actorUserId']} ({data.get('actorRole') or 'unknown role'})"
           if data.get("actorUserId") is not None else "an anonymous caller")
    return (f"{data.get('method', '?')} {data.get('path', '?')} -> {data.get('status', '?')}"
            f" on the {data.get('service', '?')} service by {who}")


def summarize(event_type: str, service: str, data: dict[str, Any]) -> str:
    """One human line describing the record (capped to the column's length)."""
    if event_type == HTTP_ACTIVITY:
        line = _http_summary(data)
    elif event_type in _TEMPLATES:
        line = _TEMPLATES[event_type].format_map(_template_fields(data))
    else:
        line = f"{event_type} from the {service} service"
    return line if len(line) <= MAX_SUMMARY else line[: MAX_SUMMARY - 3] + "..."


_json = msgspec.json.Encoder()


def build_record(*, event_type: str, event_id: str, producer: str, occurred_at: str, topic: str,
                 data: dict[str, Any]) -> AuditRecord:
    """The audit record of one event (an HTTP_ACTIVITY report becomes an "http" record)."""
    is_http = event_type == HTTP_ACTIVITY
    service = str(data.get("service") or service_name(producer)) if is_http else service_name(producer)
    path = data.get("path") if is_http else None
    return AuditRecord(
        logType=log_type(event_type),
        serviceName=service,
        eventType=event_type,
        eventId=event_id,
        actorUserId=actor_user_id(topic, event_type, data),
        actorRole=actor_role(topic, event_type, data),
        severity=severity(event_type, data),
        httpMethod=str(data.get("method")) if is_http else None,
        httpStatus=_int_or_none(data.get("status")) if is_http else None,
        path=str(path)[:MAX_PATH] if path is not None else None,
        summary=summarize(event_type, service, data),
        payload=_json.encode(redact(data)).decode(),
        occurredAt=normalize_time(occurred_at) or occurred_at,
    )


# -- queries ---------------------------------------------------------------------------------

def normalize_time(value: str) -> str | None:
    """ISO-8601 -> UTC with milliseconds and Z (the stored format, so text order is time order)."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class AuditFilters(msgspec.Struct, kw_only=True, frozen=True):
    page: int = 1
    limit: int = DEFAULT_LIMIT
    log_type: str | None = None
    service_name: str | None = None
    actor_user_id: int | None = None
    actor_role: str | None = None
    severity: str | None = None
    http_method: str | None = None
    http_status: int | None = None
    event_type: str | None = None
    occurred_from: str | None = None
    occurred_to: str | None = None
    q: str | None = None  # lower-cased; a substring of summary or payload

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit


def _in_range(value: int | None, name: str, low: int, high: int) -> None:
    if value is not None and not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}")


def _blank(value: str | None) -> bool:
    return value is None or value.strip() == ""


def _one_of(value: str | None, name: str, allowed: tuple[str, ...]) -> str | None:
    if _blank(value):
        return None
    assert value is not None
    if value.strip() not in allowed:
        raise BadRequest(f"{name} must be one of {', '.join(allowed)}")
    return value.strip()


def _name(value: str | None, name: str) -> str | None:
    if _blank(value):
        return None
    assert value is not None
    if not _NAME.match(value.strip()):
        raise BadRequest(f"{name} must be 1-100 letters, digits, '_', '.' or '-'")
    return value.strip()


def _time(value: str | None, name: str) -> str | None:
    if _blank(value):
        return None
    assert value is not None
    normalized = normalize_time(value)
    if normalized is None:
        raise BadRequest(f"{name} must be an ISO-8601 timestamp")
    return normalized


def audit_filters(*, page: int | None = None, limit: int | None = None, log_type: str | None = None,
                  service_name: str | None = None, actor_user_id: int | None = None,
                  actor_role: str | None = None, severity: str | None = None,
                  http_method: str | None = None, http_status: int | None = None,
                  event_type: str | None = None, occurred_from: str | None = None,
                  occurred_to: str | None = None, q: str | None = None) -> AuditFilters:
    """Validate a log query; every bad value is a 400 naming the parameter."""
    _in_range(page, "page", 1, MAX_PAGE)
    _in_range(limit, "limit", 1, MAX_LIMIT)
    _in_range(actor_user_id, "actorUserId", 1, MAX_ID)
    _in_range(http_status, "httpStatus", 100, 599)
    start, end = _time(occurred_from, "from"), _time(occurred_to, "to")
    if start is not None and end is not None and start > end:
        raise BadRequest("from must not be later than to")
    text = (q or "").strip()
    if len(text) > MAX_QUERY_LENGTH:
        raise BadRequest(f"q must be at most {MAX_QUERY_LENGTH} characters")
    service = _name(service_name, "serviceName")
    kind = _name(event_type, "eventType")
    return AuditFilters(
        page=page or 1, limit=limit or DEFAULT_LIMIT,
        log_type=_one_of(log_type and log_type.lower(), "logType", LOG_TYPES),
        service_name=service.lower() if service else None,
        actor_user_id=actor_user_id,
        actor_role=_one_of(actor_role and actor_role.lower(), "actorRole", ROLES),
        severity=_one_of(severity and severity.lower(), "severity", SEVERITIES),
        http_method=_one_of(http_method and http_method.upper(), "httpMethod", HTTP_METHODS),
        http_status=http_status,
        event_type=kind.upper() if kind else None,
        occurred_from=start, occurred_to=end, q=text.lower() or None,
    )

