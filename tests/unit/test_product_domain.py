"""Catalog rules: slugs, prices, currencies, images, who may edit, paging, text search patterns."""

import pytest

from microcommerce.errors import BadRequest, Forbidden
from microcommerce.services.product import domain
from microcommerce.services.product.domain import ImageInput


@pytest.mark.parametrize(("name", "slug"), [
    ("Shoes", "shoes"),
    ("Tees & Tops", "tees-tops"),
    ("  Home -- Garden  ", "home-garden"),
    ("Crème Brûlée", "creme-brulee"),
    ("Обувь", "category"),  # nothing ASCII survives: still a usable slug
])
def test_slugify(name, slug):
    assert domain.slugify(name) == slug


def test_unique_slug_suffixes_only_on_collision():
    assert domain.unique_slug("t-shirts", []) == "t-shirts"
    assert domain.unique_slug("t-shirts", ["t-shirts"]) == "t-shirts-2"
    assert domain.unique_slug("t-shirts", ["t-shirts", "t-shirts-2", "t-shirts-3"]) == "t-shirts-4"


def test_name_key_ignores_case_and_spacing():
    assert domain.name_key("  Shoes ") == domain.name_key("SHOES") == "shoes"
    assert domain.name_key("Home  Garden") == domain.name_key("home garden")


def test_blank_name_is_refused():
    with pytest.raises(BadRequest, match="blank"):
        domain.clean_name("   ")


@pytest.mark.parametrize(("price", "cents"), [(12.5, 1250), (0.01, 1), (19.99, 1999), (7, 700)])
def test_price_to_cents(price, cents):
    assert domain.price_to_cents(price) == cents


@pytest.mark.parametrize(("price", "problem"), [
    (0, "greater than 0"), (-1.5, "greater than 0"), (1.999, "2 decimal"), (1e300, "too large"),
    (float("nan"), "greater than 0"),
])
def test_bad_prices_are_refused(price, problem):
    with pytest.raises(BadRequest, match=problem):
        domain.price_to_cents(price)


def test_price_filter_bounds():
    assert domain.optional_price_to_cents(None, "minPrice") is None
    assert domain.optional_price_to_cents(0, "minPrice") == 0
    assert domain.optional_price_to_cents(10.5, "maxPrice") == 1050
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(BadRequest, match="minPrice"):
            domain.optional_price_to_cents(bad, "minPrice")


def test_currency_is_three_letters_upper_cased():
    assert domain.normalize_currency("eur") == "EUR"
    for bad in ("EURO", "E1R", "", "US"):
        with pytest.raises(BadRequest, match="currency"):
            domain.normalize_currency(bad)


def test_bare_urls_keep_their_order_and_the_first_is_primary():
    images = domain.normalize_images(["https://img.test/a.png", "https://img.test/b.png"])
    assert [(i.url, i.isPrimary, i.sortOrder) for i in images] == [
        ("https://img.test/a.png", True, 0), ("https://img.test/b.png", False, 1)]


def test_explicit_sort_order_and_primary_win():
    images = domain.normalize_images([
        ImageInput(url="https://img.test/late.png", sortOrder=20),
        ImageInput(url="https://img.test/early.png", sortOrder=10),
        ImageInput(url="https://img.test/main.png", isPrimary=True, sortOrder=30),
    ])
    assert [i.url for i in images] == ["https://img.test/early.png", "https://img.test/late.png",
                                       "https://img.test/main.png"]
    assert [i.isPrimary for i in images] == [False, False, True]
    assert [i.sortOrder for i in images] == [0, 1, 2]


def test_no_images_is_fine():
    assert domain.normalize_images([]) == []


@pytest.mark.parametrize(("images", "problem"), [
    (["not a url"], "http"),
    (["ftp://files.test/a.png"], "http"),
    ([ImageInput(url="https://a.test/1", isPrimary=True), ImageInput(url="https://a.test/2", isPrimary=True)],
     "only one image may be primary"),
    ([ImageInput(url="https://a.test/1", sortOrder=-1)], "sortOrder"),
    ([f"https://a.test/{n}" for n in range(domain.MAX_IMAGES + 1)], "at most"),
])
def test_bad_images_are_refused(images, problem):
    with pytest.raises(BadRequest, match=problem):
        domain.normalize_images(images)


def test_admin_edits_anything_and_a_supplier_only_their_own():
    domain.check_can_edit("admin", 1, 99)
    domain.check_can_edit("admin", 1, None)
    domain.check_can_edit("supplier", 7, 7)
    with pytest.raises(Forbidden, match="own products"):
        domain.check_can_edit("supplier", 7, 8)
    with pytest.raises(Forbidden, match="own products"):
        domain.check_can_edit("supplier", 7, None)  # seeded by the system: admins only
    with pytest.raises(Forbidden):
        domain.check_can_edit("user", 7, 7)


def test_page_window():
    assert domain.page_window(1, 20) == (1, 20)
    assert domain.page_window(3, 500) == (3, domain.MAX_PAGE_SIZE)
    with pytest.raises(BadRequest, match="page"):
        domain.page_window(0, 20)
    with pytest.raises(BadRequest, match="pageSize"):
        domain.page_window(1, 0)


def test_price_range_must_not_be_inverted():
    domain.check_price_range(None, 100)
    domain.check_price_range(100, 100)
    with pytest.raises(BadRequest, match="minPrice"):
        domain.check_price_range(200, 100)

