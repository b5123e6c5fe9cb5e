"""Order rules without I/O: the status machine, who may do what, lines and totals from a cart."""

from __future__ import annotations

import pytest

from microcommerce.contracts.cart import CartLine
from microcommerce.errors import BadRequest, Conflict, Forbidden
from microcommerce.services.order import domain
from microcommerce.services.order.domain import Line

ALLOWED = {("pending", "paid"), ("pending", "cancelled"), ("paid", "shipped"), ("paid", "cancelled"),
           ("shipped", "delivered")}
EVERY_PAIR = [(a, b) for a in domain.STATUSES for b in domain.STATUSES]


@pytest.mark.parametrize(("current", "target"), EVERY_PAIR)
def test_the_transition_table(current, target):
    assert domain.can_transition(current, target) == ((current, target) in ALLOWED)
    if (current, target) in ALLOWED:
        domain.check_transition(current, target)
    else:
        with pytest.raises(Conflict, match=f"from {current} to {target}"):
            domain.check_transition(current, target)


@pytest.mark.parametrize("internal", [domain.RESERVING, domain.FAILED])
def test_internal_states_go_nowhere_and_are_not_statuses(internal):
    assert not domain.is_visible(internal)
    assert not any(domain.can_transition(internal, target) for target in domain.STATUSES)
    with pytest.raises(BadRequest, match="status must be one of"):
        domain.check_status(internal)


def test_status_values_are_checked():
    assert domain.check_status("shipped") == "shipped"
    with pytest.raises(BadRequest):
        domain.check_status("Shipped")


def test_only_pending_orders_can_be_cancelled_by_their_owner():
    domain.check_cancellable("pending")
    for status in ("paid", "shipped", "delivered", "cancelled"):
        with pytest.raises(Conflict, match=status):
            domain.check_cancellable(status)


def test_owner_or_admin():
    domain.check_owner_or_admin("user", 3, 3)
    domain.check_owner_or_admin("admin", 1, 3)
    with pytest.raises(Forbidden):
        domain.check_owner_or_admin("user", 4, 3)
    with pytest.raises(Forbidden):
        domain.check_owner_or_admin("supplier", 4, 3)


def test_cancel_reason_names_who_cancelled():
    assert domain.cancel_reason(3, 3) == "cancelled by user"
    assert domain.cancel_reason(1, 3) == "cancelled by admin"


def test_payment_applies_to_pending_is_idempotent_on_paid_and_refused_after():
    assert domain.payment_applies("pending") is True
    assert domain.payment_applies("paid") is False
    for status in ("cancelled", "shipped", "delivered"):
        with pytest.raises(Conflict, match=status):
            domain.payment_applies(status)


CART = [CartLine(productId=1, productName="Lamp", quantity=3, unitPrice=12.5, lineTotal=37.5),
        CartLine(productId=2, productName="Chair", quantity=1, unitPrice=0.1, lineTotal=0.1)]


def test_a_line_from_the_cart_defaults_to_the_carts_quantity():
    assert domain.line_from_cart(CART, 1, None) == Line(1, "Lamp", 3, 1250)
    assert domain.line_from_cart(CART, 1, 2) == Line(1, "Lamp", 2, 1250)


def test_a_line_must_be_in_the_cart_and_within_its_quantity():
    with pytest.raises(BadRequest, match="not in your cart"):
        domain.line_from_cart(CART, 7, None)
    with pytest.raises(BadRequest, match="exceeds the 3 in your cart"):
        domain.line_from_cart(CART, 1, 4)
    with pytest.raises(BadRequest):
        domain.line_from_cart(CART, 1, 0)


def test_checkout_takes_every_line_and_refuses_an_empty_cart():
    assert domain.lines_from_cart(CART) == [Line(1, "Lamp", 3, 1250), Line(2, "Chair", 1, 10)]
    with pytest.raises(BadRequest, match="empty"):
        domain.lines_from_cart([])


def test_totals_are_exact_in_cents():
    lines = [Line(1, "a", 3, 10), Line(2, "b", 7, 20)]  # 0.10 × 3 + 0.20 × 7: no float drift
    assert [line.total_cents for line in lines] == [30, 140]
    assert domain.total_cents(lines) == 170


def test_stale_cutoff_adds_a_grace_of_a_few_sweeps_but_at_least_a_second():
    assert domain.stale_cutoff(1000, 900, 5) == "1970-01-01T00:01:25.000Z"  # 1000 - 900 - 15
    assert domain.stale_cutoff(1000, 1, 0.1) == "1970-01-01T00:16:38.000Z"  # 1000 - 1 - 1


def test_a_refund_cancels_a_paid_order_and_marks_a_shipped_or_delivered_one_refunded():
    assert domain.status_after_refund("paid") == "cancelled"
    assert domain.status_after_refund("shipped") == "refunded"
    assert domain.status_after_refund("delivered") == "refunded"
    for status in ("pending", "cancelled", "refunded", "reserving", "failed"):
        assert domain.status_after_refund(status) is None


def test_refunded_is_visible_but_no_admin_transition_reaches_or_leaves_it():
    assert domain.is_visible("refunded")
    for status in domain.STATUSES:
        assert not domain.can_transition(status, "refunded")
        assert not domain.can_transition("refunded", status)
    with pytest.raises(Conflict):
        domain.payment_applies("refunded")


def test_a_cart_line_of_a_deleted_product_cannot_be_ordered_nor_checked_out():
    live = CartLine(productId=1, productName="Lamp", quantity=2, unitPrice=10.0, lineTotal=20.0)
    gone = CartLine(productId=2, productName="Gone", quantity=1, unitPrice=5.0, lineTotal=5.0, available=False)
    assert domain.line_from_cart([live, gone], 1, None).quantity == 2
    with pytest.raises(Conflict, match=r"Product 2 \(Gone\) was deleted"):
        domain.line_from_cart([live, gone], 2, None)
    with pytest.raises(Conflict, match="remove it from your cart"):
        domain.lines_from_cart([live, gone])


def test_one_order_holds_a_bounded_number_of_units_per_product():
    domain.check_line_quantities([Line(1, "Lamp", 100, 1000)], 100)
    with pytest.raises(Conflict, match="At most 100 units of one product per order; you asked for 101 of product 1"):
        domain.check_line_quantities([Line(2, "Desk", 1, 1000), Line(1, "Lamp", 101, 1000)], 100)


def test_one_user_holds_a_bounded_number_of_unpaid_orders():
    domain.check_pending_limit(9, 10)
    with pytest.raises(Conflict, match="10 unpaid orders"):
        domain.check_pending_limit(10, 10)


def test_idempotency_keys_expire_and_running_claims_go_stale():
    now = 1_800_000_000.0
    created = domain.iso_from_epoch(now - 100)
    assert not domain.key_expired(created, now, 3600) and domain.key_expired(created, now, 50)
    assert not domain.claim_is_stale(created, now, 200) and domain.claim_is_stale(created, now, 10)
    assert domain.claim_stale_after_s(4.0, 4.0) > 4.0 + 2 * 4.0
