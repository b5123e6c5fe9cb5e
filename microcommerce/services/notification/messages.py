"""Commands the notification service's actors handle, and the views they answer with."""

from __future__ import annotations

import msgspec

from microcommerce.contracts.commands import Command


class NotificationView(msgspec.Struct, kw_only=True):
    id: int
    userId: int
    channel: str
    type: str
    title: str
    body: str
    status: str
    readAt: str | None
    createdAt: str
    sourceEventId: str


class NotificationList(msgspec.Struct, kw_only=True):
    notifications: list[NotificationView]
    unreadCount: int
    limit: int


class DevMessage(msgspec.Struct, kw_only=True):
    id: int
    notificationId: int
    channel: str
    to: str
    subject: str
    body: str
    createdAt: str


class ListNotifications(Command, frozen=True):
    """Newest first."""

    key_field = "user_id"
    user_id: int
    limit: int = 50


class MarkRead(Command, frozen=True):
    """NotFound unless the notification belongs to `user_id` (no peeking at others' ids)."""

    key_field = "user_id"
    user_id: int
    notification_id: int


class ReadDevOutbox(Command, frozen=True):
    """Newest first; `to` filters by recipient address."""

    to: str | None = None
    limit: int = 50
