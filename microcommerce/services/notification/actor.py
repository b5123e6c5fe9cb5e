"""Event consumers and command handlers of the notification service.

Each consumed event becomes one record per channel, written with the inbox claim in one
transaction; the UNIQUE (source_event_id, channel) index is the second guard, so a record
exists exactly once per (event, channel) however often the event arrives.
"""

from __future__ import annotations

from microcommerce.actors.service import ServiceActor, handles, on_event
from microcommerce.contracts import order as order_events
from microcommerce.contracts import payment as payment_events
from microcommerce.contracts import user as user_events
from microcommerce.contracts.events import EventEnvelope
from microcommerce.contracts.order import OrderData
from microcommerce.contracts.payment import PaymentData
from microcommerce.contracts.user import PasswordResetRequested, UserData, UserDeleted
from microcommerce.errors import NotFound
from microcommerce.services.notification import domain, store
from microcommerce.services.notification.messages import (
    DevMessage,
    ListNotifications,
    MarkRead,
    NotificationList,
    NotificationView,
    ReadDevOutbox,
)
from microcommerce.services.notification.senders import SENDERS
from microcommerce.storage import Executor


class NotificationActor(ServiceActor):
    # -- users projection and account messages ------------------------------------------
    @on_event(user_events.USER_CREATED)
    async def on_user_created(self, tx: Executor, data: UserData, envelope: EventEnvelope) -> None:
        await store.upsert_user(tx, data.id, data.name, data.email)
        await self._notify(tx, envelope, data.id, domain.welcome(data), email=data.email)

    @on_event(user_events.USER_UPDATED)
    async def on_user_updated(self, tx: Executor, data: UserData, envelope: EventEnvelope) -> None:
        await store.upsert_user(tx, data.id, data.name, data.email)

    @on_event(user_events.USER_DELETED)
    async def on_user_deleted(self, tx: Executor, data: UserDeleted, envelope: EventEnvelope) -> None:
        await store.tombstone_user(tx, data.id, data.email)

    @on_event(user_events.PASSWORD_RESET_REQUESTED)
    async def on_password_reset(self, tx: Executor, data: PasswordResetRequested,
                                envelope: EventEnvelope) -> None:
        # The event's address, not the projection's: the code must reach the mailbox that asked.
        await self._notify(tx, envelope, data.userId, domain.password_reset(data), email=data.email)

    # -- order and payment updates ---------------------------------------------------------
    @on_event(order_events.ORDER_CREATED, order_events.ORDER_PAID, order_events.ORDER_SHIPPED,
              order_events.ORDER_DELIVERED, order_events.ORDER_CANCELLED)
    async def on_order_event(self, tx: Executor, data: OrderData, envelope: EventEnvelope) -> None:
        user = await store.user(tx, data.userId)
        message = domain.order_message(envelope.eventType, data, user.name if user else None)
        await self._notify(tx, envelope, data.userId, message, email=user.email if user else None)

    @on_event(payment_events.PAYMENT_SUCCEEDED, payment_events.PAYMENT_FAILED,
              payment_events.PAYMENT_REFUNDED)
    async def on_payment_event(self, tx: Executor, data: PaymentData, envelope: EventEnvelope) -> None:
        user = await store.user(tx, data.userId)
        message = domain.payment_message(envelope.eventType, data, user.name if user else None)
        await self._notify(tx, envelope, data.userId, message, email=user.email if user else None)

    async def _notify(self, tx: Executor, envelope: EventEnvelope, user_id: int, message: domain.Message,
                      *, email: str | None) -> None:
        """One record per channel; each new record is sent (and, in dev, kept in the dev outbox)."""
        for channel in domain.channels_for(envelope.eventType, self.settings.notification_channels):
            notification_id = await store.insert_notification(tx, store.NewNotification(
                user_id=user_id, channel=channel, type=envelope.eventType, title=message.title,
                body=message.stored_body, source_event_id=envelope.eventId,
            ))
            if notification_id is None:
                continue  # this (event, channel) was already sent
            to = domain.address_for(channel, user_id, email)
            # A mock send cannot fail; a real gateway would be fed from a post-commit queue instead.
            SENDERS[channel].send(to, message.title, message.body)
            if self.settings.profile == "dev":
                await store.add_dev_message(tx, notification_id, channel, to, message.title, message.body)

    # -- queries and commands --------------------------------------------------------------
    @handles(ListNotifications)
    async def list_notifications(self, cmd: ListNotifications) -> NotificationList:
        limit = domain.clamp_limit(cmd.limit)
        rows = await store.for_user(self.db, cmd.user_id, limit)
        return NotificationList(notifications=[store.to_view(row) for row in rows],
                                unreadCount=await store.unread_count(self.db, cmd.user_id), limit=limit)

    @handles(MarkRead)
    async def mark_read(self, cmd: MarkRead) -> NotificationView:
        async with self.db.transaction() as tx:
            if await store.owned(tx, cmd.user_id, cmd.notification_id) is None:
                raise NotFound(f"Notification {cmd.notification_id} not found")
            await store.mark_read(tx, cmd.notification_id)
            row = await store.owned(tx, cmd.user_id, cmd.notification_id)
        assert row is not None
        return store.to_view(row)

    @handles(ReadDevOutbox)
    async def read_dev_outbox(self, cmd: ReadDevOutbox) -> list[DevMessage]:
        rows = await store.dev_messages(self.db, cmd.to, domain.clamp_limit(cmd.limit))
        return [store.to_dev_message(row) for row in rows]
