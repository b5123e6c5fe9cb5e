"""SQL of the notification service (its own database only)."""

from __future__ import annotations

from typing import Any

import msgspec

from microcommerce.contracts.events import utc_now_iso
from microcommerce.services.notification.domain import SENT
from microcommerce.services.notification.messages import DevMessage, NotificationView
from microcommerce.storage import Executor

_COLUMNS = "id, user_id, channel, type, title, body, status, source_event_id, read_at, created_at"


class KnownUser(msgspec.Struct, frozen=True):
    id: int
    name: str
    email: str


class NewNotification(msgspec.Struct, frozen=True, kw_only=True):
    user_id: int
    channel: str
    type: str
    title: str
    body: str
    source_event_id: str


def to_view(row: dict[str, Any]) -> NotificationView:
    return NotificationView(id=int(row["id"]), userId=int(row["user_id"]), channel=row["channel"],
                            type=row["type"], title=row["title"], body=row["body"], status=row["status"],
                            readAt=row["read_at"], createdAt=row["created_at"],
                            sourceEventId=row["source_event_id"])


def to_dev_message(row: dict[str, Any]) -> DevMessage:
    return DevMessage(id=int(row["id"]), notificationId=int(row["notification_id"]), channel=row["channel"],
                      to=row["recipient"], subject=row["subject"], body=row["body"],
                      createdAt=row["created_at"])


# -- users projection ------------------------------------------------------------------
async def user(db: Executor, user_id: int) -> KnownUser | None:
    row = await db.fetch_one("SELECT id, name, email FROM users WHERE id = ? AND deleted = 0", user_id)
    return KnownUser(int(row["id"]), row["name"], row["email"]) if row else None


async def upsert_user(tx: Executor, user_id: int, name: str, email: str) -> None:
    """Insert or refresh; a tombstoned (deleted) user stays deleted."""
    now = utc_now_iso()
    inserted = await tx.execute(
        "INSERT OR IGNORE INTO users (id, name, email, deleted, updated_at) VALUES (?, ?, ?, 0, ?)",
        user_id, name, email, now,
    )
    if inserted.rowcount == 0:
        await tx.execute("UPDATE users SET name = ?, email = ?, updated_at = ? WHERE id = ? AND deleted = 0",
                         name, email, now, user_id)


async def tombstone_user(tx: Executor, user_id: int, email: str) -> None:
    now = utc_now_iso()
    await tx.execute(
        "INSERT OR IGNORE INTO users (id, name, email, deleted, updated_at) VALUES (?, '', ?, 1, ?)",
        user_id, email, now,
    )
    await tx.execute("UPDATE users SET deleted = 1, updated_at = ? WHERE id = ?", now, user_id)


# -- notifications ---------------------------------------------------------------------
async def insert_notification(tx: Executor, new: NewNotification) -> int | None:
    """The new record's id, or None when (source event, channel) already has one."""
    result = await tx.execute(
        "INSERT OR IGNORE INTO notifications (user_id, channel, type, title, body, status, source_event_id, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        new.user_id, new.channel, new.type, new.title, new.body, SENT, new.source_event_id, utc_now_iso(),
    )
    return result.lastrowid if result.rowcount == 1 else None


async def for_user(db: Executor, user_id: int, limit: int) -> list[dict[str, Any]]:
    return await db.fetch_all(
        f"SELECT {_COLUMNS} FROM notifications WHERE user_id = ? ORDER BY id DESC LIMIT ?", user_id, limit)


async def unread_count(db: Executor, user_id: int) -> int:
    row = await db.fetch_one("SELECT COUNT(*) AS n FROM notifications WHERE user_id = ? AND read_at IS NULL",
                             user_id)
    return int(row["n"]) if row else 0


async def owned(db: Executor, user_id: int, notification_id: int) -> dict[str, Any] | None:
    return await db.fetch_one(f"SELECT {_COLUMNS} FROM notifications WHERE id = ? AND user_id = ?",
                              notification_id, user_id)


async def mark_read(tx: Executor, notification_id: int) -> None:
    """Idempotent: the first read time is kept."""
    await tx.execute("UPDATE notifications SET read_at = ? WHERE id = ? AND read_at IS NULL",
                     utc_now_iso(), notification_id)


# -- dev outbox ------------------------------------------------------------------------
async def add_dev_message(tx: Executor, notification_id: int, channel: str, to: str, subject: str,
                          body: str) -> None:
    await tx.execute(
        "INSERT INTO dev_outbox (notification_id, channel, recipient, subject, body, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        notification_id, channel, to, subject, body, utc_now_iso(),
    )


async def dev_messages(db: Executor, to: str | None, limit: int) -> list[dict[str, Any]]:
    columns = "id, notification_id, channel, recipient, subject, body, created_at"
    if to is None:
        return await db.fetch_all(f"SELECT {columns} FROM dev_outbox ORDER BY id DESC LIMIT ?", limit)
    return await db.fetch_all(f"SELECT {columns} FROM dev_outbox WHERE recipient = ? ORDER BY id DESC LIMIT ?",
                              to, limit)
