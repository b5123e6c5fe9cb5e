"""Notification rules without I/O: which event says what, to whom, on which channels."""

from __future__ import annotations

import msgspec

from microcommerce.contracts import order as order_events
from microcommerce.contracts import payment as payment_events
from microcommerce.contracts import user as user_events
from microcommerce.contracts.order import OrderData
from microcommerce.contracts.payment import PaymentData
from microcommerce.contracts.user import PasswordResetRequested, UserData

CHANNELS = ("email", "sms", "push")
SENT = "sent"
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
APP_NAME = "MicroCommerce"


class Message(msgspec.Struct, frozen=True, kw_only=True):
    title: str
    body: str
    # What the notification history keeps when the body holds a secret (the reset code is
    # mailed once, never stored in the user's history).
    history_body: str | None = None

    @property
    def stored_body(self) -> str:
        return self.history_body if self.history_body is not None else self.body


def clamp_limit(limit: int) -> int:
    return min(max(limit, 1), MAX_LIMIT)


def channels_for(event_type: str, configured: list[str]) -> list[str]:
    """A reset code goes by email only; everything else on every configured channel."""
    if event_type == user_events.PASSWORD_RESET_REQUESTED:
        return ["email"] if "email" in configured else []
    return [channel for channel in CHANNELS if channel in configured]


def address_for(channel: str, user_id: int, email: str | None) -> str:
    """Where a channel delivers: the email address, else the user's (mock) device/phone handle."""
    if channel == "email" and email:
        return email
    return f"user:{user_id}"


def greeting(name: str | None) -> str:
    return f"Hi {name}," if name else "Hello,"


def money(amount: float, currency: str) -> str:
    return f"{amount:.2f} {currency}"


def welcome(data: UserData) -> Message:
    return Message(title=f"Welcome to {APP_NAME}",
                   body=f"{greeting(data.name)} welcome to {APP_NAME}! Your account is ready.")


def password_reset(data: PasswordResetRequested) -> Message:
    return Message(
        title="Your password reset code",
        body=(f"{greeting(data.name)} your password reset code is {data.otp}. It expires at "
              f"{data.expiresAt}. If you did not ask for it, ignore this message."),
        history_body="A password reset code was sent to your email address.",
    )


def _items(order: OrderData) -> str:
    count = sum(line.quantity for line in order.items)
    return f"{count} item" + ("" if count == 1 else "s")


def order_message(event_type: str, order: OrderData, name: str | None) -> Message:
    ref = f"order #{order.id}"
    total = money(order.totalAmount, order.currency)
    hello = greeting(name)
    if event_type == order_events.ORDER_CREATED:
        return Message(title=f"Order #{order.id} received",
                       body=f"{hello} we received your {ref} ({_items(order)}, {total}). "
                            "Complete the payment to confirm it.")
    if event_type == order_events.ORDER_PAID:
        return Message(title=f"Order #{order.id} paid",
                       body=f"{hello} your {ref} is paid ({total}). We are preparing it for shipment.")
    if event_type == order_events.ORDER_SHIPPED:
        return Message(title=f"Order #{order.id} shipped", body=f"{hello} your {ref} is on its way.")
    if event_type == order_events.ORDER_DELIVERED:
        return Message(title=f"Order #{order.id} delivered",
                       body=f"{hello} your {ref} has been delivered. Enjoy!")
    if event_type == order_events.ORDER_CANCELLED:
        why = f" ({order.reason})" if order.reason else ""
        return Message(title=f"Order #{order.id} cancelled", body=f"{hello} your {ref} was cancelled{why}.")
    raise ValueError(f"not an order event: {event_type}")


FAILURE_REASONS = {
    "card_declined": "the card was declined",
    "insufficient_funds": "of insufficient funds",
    "invalid_token": "the payment details were not valid",
    "declined": "it was declined",
}


def payment_message(event_type: str, payment: PaymentData, name: str | None) -> Message:
    amount = money(payment.amount, payment.currency)
    ref = f"order #{payment.orderId}"
    hello = greeting(name)
    if event_type == payment_events.PAYMENT_SUCCEEDED:
        return Message(title="Payment received",
                       body=f"{hello} we received your payment of {amount} for {ref}.")
    if event_type == payment_events.PAYMENT_FAILED:
        reason = FAILURE_REASONS.get(payment.failureReason or "", "it could not be processed")
        return Message(title="Payment failed",
                       body=f"{hello} your payment of {amount} for {ref} failed because {reason}. "
                            "No money was taken; you can try again.")
    if event_type == payment_events.PAYMENT_REFUNDED:
        return Message(title="Payment refunded",
                       body=f"{hello} your payment of {amount} for {ref} has been refunded.")
    raise ValueError(f"not a notifying payment event: {event_type}")
