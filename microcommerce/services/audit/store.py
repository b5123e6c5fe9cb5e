"""SQL of the audit service (its own database only)."""

from __future__ import annotations

from typing import Any

from microcommerce.contracts.events import utc_now_iso
from microcommerce.services.audit.domain import AuditFilters, AuditRecord
from microcommerce.services.audit.messages import AuditLogView
from microcommerce.storage import Executor
from microcommerce.storage.text_search import contains_any

_COLUMNS = ("id, log_type, service_name, event_type, event_id, actor_user_id, actor_role, severity, "
            "http_method, http_status, path, summary, payload, occurred_at")
# Equality filters: AuditFilters field -> column.
_EQUALS = {
    "log_type": "log_type", "service_name": "service_name", "actor_user_id": "actor_user_id",
    "actor_role": "actor_role", "severity": "severity", "http_method": "http_method",
    "http_status": "http_status", "event_type": "event_type",
}


def _int(value: Any) -> int | None:
    return int(value) if value is not None else None


def to_view(row: dict[str, Any]) -> AuditLogView:
    return AuditLogView(
        id=int(row["id"]), logType=row["log_type"], serviceName=row["service_name"],
        eventType=row["event_type"], eventId=row["event_id"], actorUserId=_int(row["actor_user_id"]),
        actorRole=row["actor_role"], severity=row["severity"], httpMethod=row["http_method"],
        httpStatus=_int(row["http_status"]), path=row["path"], summary=row["summary"],
        payload=row["payload"], occurredAt=row["occurred_at"],
    )


async def insert(tx: Executor, record: AuditRecord) -> bool:
    """Store the record once per eventId; False when it was already there."""
    result = await tx.execute(
        "INSERT OR IGNORE INTO audit_logs (log_type, service_name, event_type, event_id, actor_user_id, "
        "actor_role, severity, http_method, http_status, path, summary, payload, occurred_at, "
        "recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        record.logType, record.serviceName, record.eventType, record.eventId, record.actorUserId,
        record.actorRole, record.severity, record.httpMethod, record.httpStatus, record.path,
        record.summary, record.payload, record.occurredAt, utc_now_iso(),
    )
    return result.rowcount == 1


def _where(filters: AuditFilters) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for field, column in _EQUALS.items():
        value = getattr(filters, field)
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if filters.occurred_from is not None:
        clauses.append("occurred_at >= ?")
        params.append(filters.occurred_from)
    if filters.occurred_to is not None:
        clauses.append("occurred_at <= ?")
        params.append(filters.occurred_to)
    if filters.q:
        clause, patterns = contains_any(("summary", "payload"), filters.q)
        clauses.append(clause)
        params += patterns
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


async def search(db: Executor, filters: AuditFilters) -> tuple[list[AuditLogView], int]:
    """One page of matching records, newest first, and how many match in all."""
    where, params = _where(filters)
    rows = await db.fetch_all(
        f"SELECT {_COLUMNS} FROM audit_logs{where} ORDER BY occurred_at DESC, id DESC LIMIT ? OFFSET ?",
        *params, filters.limit, filters.offset,
    )
    count = await db.fetch_one(f"SELECT COUNT(*) AS n FROM audit_logs{where}", *params)
    return [to_view(row) for row in rows], int(count["n"]) if count else 0
