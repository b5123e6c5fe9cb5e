"""Payment rules and the Idempotency-Key rules, without I/O."""

from __future__ import annotations

import time

import pytest

from microcommerce.contracts.events import iso_from_epoch
from microcommerce.errors import BadRequest, Conflict, Forbidden
from microcommerce.services.payment import domain, idempotency


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
    assert "nothing was charged" in domain.decline_message("interrupted")


def test_attempt_keys_are_fresh_and_refund_keys_follow_the_payment():
    keys = {domain.new_attempt_key() for _ in range(100)}
    assert len(keys) == 100 and all(k.startswith("pay_") and len(k) <= 64 for k in keys)
    assert domain.refund_key("pay_1", 5) == domain.refund_key("pay_1", 5) == "refund_pay_1"
    assert domain.refund_key(None, 5) == "refund_payment_5"  # a payment from before write-ahead


def test_only_attempts_older_than_any_charge_in_flight_may_be_abandoned():
    horizon = domain.in_flight_horizon_s(4.0)
    assert horizon == 8.0 and domain.in_flight_horizon_s(0.1) == 5.0
    now = time.time()
    assert not domain.may_abandon(iso_from_epoch(now - 1), now, horizon)
    assert not domain.may_abandon(iso_from_epoch(now - horizon + 0.5), now, horizon)
    assert domain.may_abandon(iso_from_epoch(now - horizon - 0.5), now, horizon)


def test_what_a_settled_charge_answers():
    assert [domain.answer_status(s) for s in ("succeeded", "failed", "refunded")] == [201, 402, 409]


@pytest.mark.parametrize("key", ["a", "x" * 255, "order-42 retry #1", "~!@$%^&*()_+{}|:<>?", " padded "])
def test_idempotency_keys_are_1_to_255_printable_ascii(key):
    assert idempotency.parse_key(key) == key


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there", "nl\n", "\x7f"])
def test_other_idempotency_keys_are_a_bad_request(key):
    with pytest.raises(BadRequest, match="Idempotency-Key must be 1 to 255 printable ASCII characters"):
        idempotency.parse_key(key)


def test_no_header_means_no_key():
    assert idempotency.parse_key(None) is None


def test_a_request_is_identified_by_its_meaning_not_its_spelling():
    one = idempotency.fingerprint({"orderId": 1, "metadata": {"a": 1, "b": 2}, "provider": "stripe"})
    same = idempotency.fingerprint({"provider": "stripe", "orderId": 1, "metadata": {"b": 2, "a": 1}})
    other = idempotency.fingerprint({"orderId": 2, "metadata": {"a": 1, "b": 2}, "provider": "stripe"})
    assert one == same != other
    assert idempotency.key_hash("Key") != idempotency.key_hash("key")  # keys are case-sensitive
