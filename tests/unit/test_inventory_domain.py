"""Stock rules without I/O: levels, reserve/release/confirm/adjust, the stock-in invariant, expiry."""

from __future__ import annotations

import pytest

from microcommerce.contracts.inventory import ReserveLine
from microcommerce.errors import BadRequest, Conflict, Forbidden
from microcommerce.services.inventory import domain
from microcommerce.services.inventory.domain import StockLevels


def test_available_is_total_minus_reserved_and_stock_in_counts_the_sold():
    levels = StockLevels(total=8, reserved=3, sold=2)
    assert levels.available == 5
    assert levels.stock_in == levels.available + levels.reserved + levels.sold == 10


def test_reserve_takes_from_available_only():
    levels = domain.reserve(StockLevels(10, 4), 6, product_id=1)
    assert (levels.total, levels.reserved, levels.available) == (10, 10, 0)
    with pytest.raises(Conflict, match="product 1: requested 1, available 0"):
        domain.reserve(levels, 1, product_id=1)


@pytest.mark.parametrize("quantity", [0, -2])
def test_reserving_nothing_or_less_is_a_bad_request(quantity):
    with pytest.raises(BadRequest):
        domain.reserve(StockLevels(10, 0), quantity, product_id=1)


def test_release_gives_reserved_units_back_and_never_goes_negative():
    assert domain.release(StockLevels(10, 4), 3) == StockLevels(10, 1)
    assert domain.release(StockLevels(10, 1), 3) == StockLevels(10, 0)


def test_confirm_moves_reserved_units_to_sold():
    levels = domain.confirm(StockLevels(10, 4, 1), 4)
    assert levels == StockLevels(total=6, reserved=0, sold=5)
    assert levels.available == 6


def test_every_change_but_an_adjustment_keeps_stock_in():
    levels = StockLevels(20, 0)
    for step in (lambda s: domain.reserve(s, 5, 1), lambda s: domain.reserve(s, 7, 1),
                 lambda s: domain.confirm(s, 5), lambda s: domain.release(s, 7)):
        levels = step(levels)
        assert levels.available + levels.reserved + levels.sold == 20
    assert levels == StockLevels(total=15, reserved=0, sold=5)


def test_adjusting_the_total_keeps_what_is_reserved():
    assert domain.set_total(StockLevels(10, 4, 2), 4, product_id=9) == StockLevels(4, 4, 2)
    with pytest.raises(Conflict, match="below the 4 units reserved"):
        domain.set_total(StockLevels(10, 4), 3, product_id=9)
    with pytest.raises(BadRequest):
        domain.set_total(StockLevels(10, 0), -1, product_id=9)


def test_initial_stock_is_never_negative():
    assert domain.initial_quantity(7) == 7
    assert domain.initial_quantity(-3) == 0


@pytest.mark.parametrize(("role", "actor", "owner", "allowed"), [
    ("admin", 1, None, True), ("admin", 1, 2, True), ("supplier", 5, 5, True),
    ("supplier", 5, 6, False), ("supplier", 5, None, False), ("user", 5, 5, False),
])
def test_who_may_adjust_stock(role, actor, owner, allowed):
    if allowed:
        domain.check_may_adjust(role, actor, owner)
    else:
        with pytest.raises(Forbidden):
            domain.check_may_adjust(role, actor, owner)


def test_lines_merge_per_product_in_product_order():
    merged = domain.merge_lines([ReserveLine(9, 1), ReserveLine(2, 3), ReserveLine(9, 2)])
    assert merged == [ReserveLine(2, 3), ReserveLine(9, 3)]


@pytest.mark.parametrize("lines", [[], [ReserveLine(1, 0)], [ReserveLine(0, 1)], [ReserveLine(1, -1)]])
def test_bad_lines_are_a_bad_request(lines):
    with pytest.raises(BadRequest):
        domain.merge_lines(lines)


def test_release_reason_decides_the_reservation_status():
    assert domain.status_after_release("expired") == "expired"
    assert domain.status_after_release("cancelled") == "released"
    assert domain.status_after_release("released") == "released"
    with pytest.raises(BadRequest):
        domain.status_after_release("lost")


def test_expiry_defaults_to_the_ttl_and_normalizes_what_is_given():
    assert domain.expiry(0, 900, None) == "1970-01-01T00:15:00.000Z"
    assert domain.expiry(0, 900, "2030-05-01T10:00:00Z") == "2030-05-01T10:00:00.000Z"
    assert domain.expiry(0, 900, "2030-05-01T12:00:00+02:00") == "2030-05-01T10:00:00.000Z"
    assert domain.expiry(0, 900, "2030-05-01T10:00:00") == "2030-05-01T10:00:00.000Z"
    with pytest.raises(BadRequest, match="expiresAt"):
        domain.expiry(0, 900, "next tuesday")



def test_a_discontinued_products_stock_refuses_reservations():
    domain.check_still_sold(False, 5)
    with pytest.raises(Conflict, match="Product 5 was deleted and can no longer be ordered"):
        domain.check_still_sold(True, 5)
