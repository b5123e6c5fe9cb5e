"""Payment rules and the mock providers' test modes, without I/O."""

from __future__ import annotations

import re

import pytest

from microcommerce.errors import BadRequest, Conflict, Forbidden
from microcommerce.services.payment import domain
from microcommerce.services.payment.providers import PaymobMock, StripeMock, default_providers


@pytest.mark.parametrize(("given", "chosen"), [
    (None, "stripe"), ("", "stripe"), ("stripe", "stripe"), ("PayMob", "paymob"), (" paymob ", "paymob"),
])
def test_provider_defaults_to_stripe_and_ignores_case(given, chosen):
    assert domain.check_provider(given) == chosen


@pytest.mark.parametrize("unknown", ["paypal", "stripe2", "tok_visa"])
def test_unknown_provider_is_a_bad_request(unknown):
    with pytest.raises(BadRequest, match="provider must be one of stripe, paymob"):
        domain.check_provider(unknown)


def test_only_the_owner_may_charge_and_before_anything_else():
    with pytest.raises(Forbidden):
        domain.check_chargeable(7, "pending", 8, already_paid=False, cancelled=False)
    # Someone else's paid order still says 403, not 409: no hints about other users' orders.
    with pytest.raises(Forbidden):
        domain.check_chargeable(7, "paid", 8, already_paid=True, cancelled=True)


def test_a_pending_order_of_the_caller_is_chargeable():
    domain.check_chargeable(7, "pending", 7, already_paid=False, cancelled=False)


@pytest.mark.parametrize("status", ["paid", "shipped", "delivered", "cancelled"])
def test_an_order_that_is_not_pending_cannot_be_charged(status):
    with pytest.raises(Conflict, match=f"Order is {status}"):
        domain.check_chargeable(7, status, 7, already_paid=False, cancelled=False)


def test_local_knowledge_wins_over_a_stale_pending_summary():
    with pytest.raises(Conflict, match="already paid"):
        domain.check_chargeable(7, "pending", 7, already_paid=True, cancelled=False)
    with pytest.raises(Conflict, match="cancelled"):
        domain.check_chargeable(7, "pending", 7, already_paid=False, cancelled=True)


def test_only_succeeded_payments_are_refundable():
    domain.check_refundable("succeeded")
    for status in ("pending", "failed", "refunded"):
        with pytest.raises(Conflict, match=f"Payment is {status}"):
            domain.check_refundable(status)


def test_metadata_is_bounded():
    assert domain.check_metadata(None) is None
    assert domain.check_metadata({"note": "gift"}) == {"note": "gift"}
    with pytest.raises(BadRequest, match="metadata"):
        domain.check_metadata({"blob": "x" * domain.METADATA_MAX_BYTES})


def test_decline_messages_explain_the_reason():
    assert domain.decline_message("card_declined") == "Payment failed: the card was declined"
    assert domain.decline_message("insufficient_funds") == "Payment failed: insufficient funds"
    assert domain.decline_message("something_new") == "Payment failed: something_new"
    assert domain.decline_message(None) == "Payment failed: unknown reason"


@pytest.mark.parametrize(("token", "reason"), [
    ("tok_visa", None), ("tok_mastercard", None), (None, None),
    ("tok_chargeDeclined", "card_declined"), ("tok_insufficientFunds", "insufficient_funds"),
    ("tok_unknown", "invalid_token"), ("paymob_success", "invalid_token"),
])
def test_stripe_test_tokens(token, reason):
    result = StripeMock().charge(1999, "USD", token)
    assert result.succeeded is (reason is None)
    assert result.failure_reason == reason
    assert re.fullmatch(r"ch_[0-9a-f]{24}", result.provider_payment_id)


@pytest.mark.parametrize(("token", "reason"), [
    (None, None), ("paymob_success", None), ("paymob_declined", "declined"), ("tok_visa", "invalid_token"),
])
def test_paymob_test_tokens(token, reason):
    result = PaymobMock().charge(500, "EGP", token)
    assert result.succeeded is (reason is None)
    assert result.failure_reason == reason
    assert result.provider_payment_id.startswith("pm_")


def test_only_successful_charges_capture_money_and_refunds_give_it_back_once():
    stripe = StripeMock()
    ok = stripe.charge(1999, "USD", "tok_visa")
    declined = stripe.charge(1999, "USD", "tok_chargeDeclined")
    assert stripe.captured == {ok.provider_payment_id: 1999}
    assert stripe.refund(declined.provider_payment_id).startswith("re_")
    assert stripe.refunded == {}
    stripe.refund(ok.provider_payment_id)
    stripe.refund(ok.provider_payment_id)
    assert stripe.refunded == {ok.provider_payment_id: 1999}


def test_charge_ids_are_unique():
    stripe = StripeMock()
    ids = {stripe.charge(100, "USD", "tok_visa").provider_payment_id for _ in range(50)}
    assert len(ids) == 50


def test_default_providers_are_stripe_and_paymob():
    assert sorted(default_providers()) == ["paymob", "stripe"]
