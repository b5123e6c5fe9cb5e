"""Notification rules without I/O: channels, addresses and the text of each message."""

from __future__ import annotations

import pytest

from microcommerce.contracts.order import OrderData, OrderLine
from microcommerce.contracts.payment import PaymentData
from microcommerce.contracts.user import PasswordResetRequested, UserData
from microcommerce.services.notification import domain
from microcommerce.services.notification.senders import EmailSender, default_senders


def order(**overrides) -> OrderData:
    fields = dict(id=42, userId=7, status="pending", totalAmount=59.9, currency="USD",
                  items=[OrderLine(productId=1, productName="Mug", quantity=2, unitPrice=9.95, lineTotal=19.9),
                         OrderLine(productId=2, productName="Pot", quantity=1, unitPrice=40.0, lineTotal=40.0)])
    fields.update(overrides)
    return OrderData(**fields)


def payment(**overrides) -> PaymentData:
    fields = dict(id=3, orderId=42, userId=7, provider="stripe", providerPaymentId="ch_1", status="succeeded",
                  amount=59.9, currency="USD")
    fields.update(overrides)
    return PaymentData(**fields)


def test_every_configured_channel_in_a_fixed_order():
    assert domain.channels_for("ORDER_PAID", ["push", "email", "sms"]) == ["email", "sms", "push"]
    assert domain.channels_for("USER_CREATED", ["sms"]) == ["sms"]


def test_reset_codes_go_by_email_only():
    assert domain.channels_for("PASSWORD_RESET_REQUESTED", ["email", "sms", "push"]) == ["email"]
    assert domain.channels_for("PASSWORD_RESET_REQUESTED", ["sms", "push"]) == []


def test_addresses_per_channel():
    assert domain.address_for("email", 7, "alice@example.com") == "alice@example.com"
    assert domain.address_for("email", 7, None) == "user:7"  # user not projected yet
    assert domain.address_for("sms", 7, "alice@example.com") == "user:7"
    assert domain.address_for("push", 7, None) == "user:7"


@pytest.mark.parametrize(("given", "used"), [(0, 1), (-5, 1), (1, 1), (50, 50), (200, 200), (10_000, 200)])
def test_limits_are_clamped(given, used):
    assert domain.clamp_limit(given) == used


def test_welcome_greets_by_name():
    message = domain.welcome(UserData(id=7, name="Alice", email="a@example.com", role="user",
                                      accountStatus="active"))
    assert message.title == "Welcome to MicroCommerce"
    assert message.body.startswith("Hi Alice,")
    assert message.stored_body == message.body


def test_reset_code_is_mailed_but_not_kept_in_history():
    message = domain.password_reset(PasswordResetRequested(
        userId=7, email="a@example.com", name="Alice", otp="123456", expiresAt="2030-01-01T00:00:00.000Z"))
    assert "123456" in message.body and "2030-01-01T00:00:00.000Z" in message.body
    assert "123456" not in message.stored_body


@pytest.mark.parametrize(("event_type", "title", "phrase"), [
    ("ORDER_CREATED", "Order #42 received", "3 items, 59.90 USD"),
    ("ORDER_PAID", "Order #42 paid", "is paid (59.90 USD)"),
    ("ORDER_SHIPPED", "Order #42 shipped", "on its way"),
    ("ORDER_DELIVERED", "Order #42 delivered", "has been delivered"),
    ("ORDER_CANCELLED", "Order #42 cancelled", "was cancelled."),
])
def test_order_messages(event_type, title, phrase):
    message = domain.order_message(event_type, order(), "Alice")
    assert message.title == title
    assert phrase in message.body
    assert message.body.startswith("Hi Alice,")


def test_order_message_counts_one_item_in_the_singular_and_greets_strangers():
    one = order(items=[OrderLine(productId=1, productName="Mug", quantity=1, unitPrice=5.0, lineTotal=5.0)],
                totalAmount=5.0)
    message = domain.order_message("ORDER_CREATED", one, None)
    assert "(1 item, 5.00 USD)" in message.body
    assert message.body.startswith("Hello,")


def test_cancellation_says_why_when_known():
    message = domain.order_message("ORDER_CANCELLED", order(reason="reservation expired"), "Alice")
    assert "was cancelled (reservation expired)." in message.body


@pytest.mark.parametrize(("event_type", "title", "phrase"), [
    ("PAYMENT_SUCCEEDED", "Payment received", "payment of 59.90 USD for order #42"),
    ("PAYMENT_REFUNDED", "Payment refunded", "has been refunded"),
])
def test_payment_messages(event_type, title, phrase):
    message = domain.payment_message(event_type, payment(), "Alice")
    assert message.title == title
    assert phrase in message.body


@pytest.mark.parametrize(("reason", "phrase"), [
    ("card_declined", "because the card was declined"),
    ("insufficient_funds", "because of insufficient funds"),
    ("brand_new_reason", "because it could not be processed"),
    (None, "because it could not be processed"),
])
def test_payment_failures_explain_why_and_that_no_money_was_taken(reason, phrase):
    message = domain.payment_message("PAYMENT_FAILED", payment(status="failed", failureReason=reason), None)
    assert message.title == "Payment failed"
    assert phrase in message.body and "No money was taken" in message.body


def test_events_without_a_message_are_refused():
    with pytest.raises(ValueError):
        domain.order_message("ORDER_ARCHIVED", order(), None)
    with pytest.raises(ValueError):
        domain.payment_message("PAYMENT_CREATED", payment(), None)


def test_mock_senders_record_what_they_send():
    sender = EmailSender()
    sent = sender.send("a@example.com", "Subject", "Body")
    assert list(sender.sent) == [sent]
    assert (sent.channel, sent.to, sent.subject, sent.body) == ("email", "a@example.com", "Subject", "Body")
    assert sorted(default_senders()) == ["email", "push", "sms"]
