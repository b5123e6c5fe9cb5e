"""Errors that cross boundaries: raised in handlers, carried back to callers, shown as HTTP JSON.

Every error here has a user-safe message and an HTTP status; anything else a handler raises
is a crash (a supervision event) and reaches the client only as a generic 500.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    status: int = 500
    headers: dict[str, str] | None = None

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return body


class BadRequest(ServiceError):
    status = 400


class InvalidInput(BadRequest):
    """The database refused a value itself (out of range, too long, wrong kind): the client's
    input, not a crash. Raised by the storage adapters as a safety net behind route checks."""


class Unauthorized(ServiceError):
    status = 401


class Forbidden(ServiceError):
    status = 403


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    status = 409


class UnprocessableEntity(ServiceError):
    """Well-formed but unusable, e.g. an Idempotency-Key reused for a different request."""

    status = 422


class PaymentRequired(ServiceError):
    status = 402


class Overloaded(ServiceError):
    """A bounded mailbox is full; the caller should retry later."""

    status = 503

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after_s)}


class ServiceUnavailable(ServiceError):
    status = 503

    def __init__(self, message: str, *, retry_after_s: int = 5) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after_s)}


class UpstreamTimeout(ServiceError):
    status = 504


class InternalError(ServiceError):
    status = 500


ERRORS_BY_STATUS: dict[int, type[ServiceError]] = {
    400: BadRequest,
    401: Unauthorized,
    402: PaymentRequired,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: UnprocessableEntity,
    500: InternalError,
    504: UpstreamTimeout,
}


def error_from_status(status: int, message: str, details: Any = None) -> ServiceError:
    """Rebuild an error received from another process (internal RPC over HTTP)."""
    if status == 503:
        return ServiceUnavailable(message)
    cls = ERRORS_BY_STATUS.get(status, InternalError)
    return cls(message, details=details)
