"""HTTP routes of the notification service.

The dev outbox: in the dev profile (`profile = "dev"`, the default) every message the mock
senders "send" is also kept in a table, and `GET /notifications/dev/outbox?to=<address>&limit=`
shows it, newest first, to an admin only: it holds every user's one-time codes, so anyone
else reading it could take over any account (the admin's included). This is how a developer
reads, say, the password-reset code mailed to alice@example.com. In any other profile the route
does not exist (404).
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from microcommerce.http.app import SETTINGS, ask
from microcommerce.http.auth import authenticate, require_owner_or_admin, require_role
from microcommerce.http.body import int_param, json_response, query_int, query_value
from microcommerce.http.openapi import Error, api
from microcommerce.services.notification import domain
from microcommerce.services.notification.messages import (
    DevMessage,
    ListNotifications,
    MarkRead,
    NotificationList,
    NotificationView,
    ReadDevOutbox,
)


class LimitQuery(msgspec.Struct):
    limit: int | None = None


class OutboxQuery(msgspec.Struct):
    to: str | None = None
    limit: int | None = None


class DevOutbox(msgspec.Struct):
    messages: list[DevMessage]


def _limit(request: web.Request) -> int:
    return query_int(request, "limit", domain.DEFAULT_LIMIT, high=domain.MAX_LIMIT)


@api(summary="The caller's notifications, newest first", auth=True, query=LimitQuery,
     responses={200: NotificationList})
async def my_notifications(request: web.Request) -> web.Response:
    """The caller's notifications, newest first (limit: default 50, at most 200)."""
    principal = authenticate(request)
    return json_response(await ask(request, ListNotifications(user_id=principal.id, limit=_limit(request))))


@api(summary="Mark one of the caller's notifications read", auth=True,
     responses={200: NotificationView})
async def mark_read(request: web.Request) -> web.Response:
    """Mark one of the caller's notifications read; someone else's id is 404, as if it did not exist."""
    principal = authenticate(request)
    notification_id = int_param(request.match_info["notificationId"], "notificationId")
    return json_response(await ask(request, MarkRead(user_id=principal.id, notification_id=notification_id)))


@api(summary="A user's notifications (the owner or an admin)", auth=True, query=LimitQuery,
     responses={200: NotificationList, 403: Error})
async def user_notifications(request: web.Request) -> web.Response:
    user_id = int_param(request.match_info["userId"], "userId")
    require_owner_or_admin(request, user_id)
    return json_response(await ask(request, ListNotifications(user_id=user_id, limit=_limit(request))))


@api(summary="Dev profile only: the messages the mock senders sent", auth="admin", query=OutboxQuery,
     responses={200: DevOutbox})
async def dev_outbox(request: web.Request) -> web.Response:
    require_role(request, "admin")
    to = query_value(request, "to", str, "").strip().lower() or None
    messages = await ask(request, ReadDevOutbox(to=to, limit=_limit(request)))
    return json_response({"messages": messages})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/notifications/me", my_notifications)
    app.router.add_patch("/notifications/me/{notificationId}/read", mark_read)
    app.router.add_get("/notifications/user/{userId}", user_notifications)
    if app[SETTINGS].profile == "dev":
        app.router.add_get("/notifications/dev/outbox", dev_outbox)
