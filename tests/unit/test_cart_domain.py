"""Cart rules: per-line maximum, one currency per cart, totals in cents, what a paid order bought."""

import pytest

from microcommerce.contracts.order import OrderLine
from microcommerce.errors import Conflict
from microcommerce.services.cart import domain
from microcommerce.services.cart.domain import Line


def line(product_id=1, price_cents=1250, quantity=1, currency="USD", name="Dune"):
    return Line(product_id=product_id, product_name=name, unit_price_cents=price_cents, currency=currency,
                quantity=quantity)


def test_adding_grows_a_line_up_to_the_maximum():
    assert domain.check_line_quantity(0, 3) == 3
    assert domain.check_line_quantity(990, 9) == domain.MAX_LINE_QUANTITY
    with pytest.raises(Conflict, match="at most 999"):
        domain.check_line_quantity(990, 10)


def test_a_cart_holds_one_currency():
    lines = [line(product_id=1, currency="USD")]
    domain.check_currency(lines, 2, "USD")
    domain.check_currency(lines, 1, "EUR")  # the line being re-added is re-priced, not mixed
    domain.check_currency([], 2, "EUR")
    with pytest.raises(Conflict, match="USD"):
        domain.check_currency(lines, 2, "EUR")


def test_totals_are_exact_in_cents():
    # 3 x 0.10 + 1 x 0.20 is 0.50 exactly (floats would say 0.5000000000000001)
    view = domain.cart_view(7, 42, "2026-01-01T00:00:00.000Z",
                            [line(1, 10, 3, name="Clip"), line(2, 20, 1, name="Pin")])
    assert view.totalQuantity == 4
    assert view.totalAmount == 0.5
    assert [(i.productId, i.unitPrice, i.lineTotal) for i in view.items] == [(1, 0.1, 0.3), (2, 0.2, 0.2)]
    assert (view.id, view.userId, view.currency) == (7, 42, "USD")


def test_an_empty_cart_is_zero_in_the_default_currency():
    view = domain.cart_view(1, 1, "2026-01-01T00:00:00.000Z", [])
    assert (view.items, view.totalQuantity, view.totalAmount, view.currency) == ([], 0, 0, "USD")


def test_cart_currency_follows_its_lines():
    assert domain.cart_currency([line(currency="EUR")]) == "EUR"


def test_bought_quantities_merge_repeated_products_and_skip_empty_lines():
    items = [
        OrderLine(productId=1, productName="A", quantity=2, unitPrice=1.0, lineTotal=2.0),
        OrderLine(productId=2, productName="B", quantity=0, unitPrice=1.0, lineTotal=0.0),
        OrderLine(productId=1, productName="A", quantity=1, unitPrice=1.0, lineTotal=1.0),
    ]
    assert domain.bought_quantities(items) == {1: 3}


def test_price_cents_rounds_the_two_place_price():
    assert domain.price_cents(19.99) == 1999
    assert domain.price_cents(0.1) == 10


def test_lines_of_deleted_products_show_unavailable_and_stay_out_of_the_totals():
    lines = [domain.Line(product_id=1, product_name="Lamp", unit_price_cents=1000, currency="USD", quantity=2),
             domain.Line(product_id=2, product_name="Gone", unit_price_cents=500, currency="USD", quantity=3,
                         available=False)]
    view = domain.cart_view(1, 1, "2026-01-01T00:00:00.000Z", lines)
    assert [(item.productId, item.available) for item in view.items] == [(1, True), (2, False)]
    assert (view.totalQuantity, view.totalAmount) == (2, 20.0)
