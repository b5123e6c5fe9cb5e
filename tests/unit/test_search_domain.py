"""Search rules: merging events into index entries (order, duplicates, deletes) and query validation."""

import pytest

from microcommerce.contracts.inventory import StockChanged
from microcommerce.contracts.product import ProductData
from microcommerce.errors import BadRequest
from microcommerce.services.search import domain

T1 = "2026-02-15T12:00:00.000Z"
T2 = "2026-02-15T12:00:01.000Z"
T3 = "2026-02-15T12:00:02.000Z"


def product(name: str = "Desk Lamp", price: float = 19.99, stock: int = 5, version: int = 0) -> ProductData:
    return ProductData(id=7, categoryId=3, categoryName="Lighting", name=name,
                       description="Warm LED light", price=price, stockQuantity=stock, version=version)


def stock(available: int, version: int = 0) -> StockChanged:
    return StockChanged(productId=7, totalQuantity=10, reservedQuantity=10 - available,
                        availableQuantity=available, version=version)


def test_created_product_is_searchable_with_its_initial_stock_in_cents():
    entry = domain.apply_product(None, product(), T1, created=True)
    assert entry is not None and entry.searchable
    assert (entry.name, entry.price_cents, entry.available_quantity) == ("Desk Lamp", 1999, 5)
    assert (entry.category_id, entry.category_name, entry.product_at) == (3, "Lighting", T1)


def test_stock_before_product_makes_a_hidden_placeholder_whose_stock_wins_over_initial():
    placeholder = domain.apply_stock(None, stock(2), T2)
    assert placeholder is not None and not placeholder.searchable
    entry = domain.apply_product(placeholder, product(stock=5), T1, created=True)
    assert entry is not None and entry.searchable
    assert entry.available_quantity == 2  # the stock event already set it


def test_update_does_not_reset_stock():
    created = domain.apply_product(None, product(stock=5), T1, created=True)
    updated = domain.apply_product(created, product(name="Lamp", stock=0), T2, created=False)
    assert updated is not None
    assert (updated.name, updated.available_quantity) == ("Lamp", 5)


def test_older_product_update_is_ignored_and_newer_applies():
    newer = domain.apply_product(None, product(name="New name"), T2, created=False)
    assert domain.apply_product(newer, product(name="Old name"), T1, created=False) is None
    latest = domain.apply_product(newer, product(name="Latest"), T3, created=False)
    assert latest is not None and latest.name == "Latest"


def test_late_creation_after_an_update_only_seeds_the_stock():
    updated = domain.apply_product(None, product(name="Renamed", stock=0), T2, created=False)
    entry = domain.apply_product(updated, product(name="Original", stock=4), T1, created=True)
    assert entry is not None
    assert (entry.name, entry.available_quantity) == ("Renamed", 4)


def test_the_stock_version_decides_even_when_two_changes_share_a_millisecond():
    newer = domain.apply_stock(None, stock(2, version=5), T2)
    assert newer is not None and newer.stock_version == 5
    assert domain.apply_stock(newer, stock(3, version=4), T2) is None  # same instant, older version
    assert domain.apply_stock(newer, stock(3, version=4), T3) is None  # a later clock can't win either
    assert domain.apply_stock(newer, stock(2, version=5), T2) is None  # a repeat changes nothing
    later = domain.apply_stock(newer, stock(1, version=6), T1)
    assert later is not None and (later.available_quantity, later.stock_version) == (1, 6)


def test_the_product_version_decides_even_when_two_updates_share_a_millisecond():
    created = domain.apply_product(None, product(version=1), T1, created=True)
    renamed = domain.apply_product(created, product("Lamp v3", version=3), T2, created=False)
    assert renamed is not None and (renamed.name, renamed.product_version) == ("Lamp v3", 3)
    assert domain.apply_product(renamed, product("Lamp v2", version=2), T2, created=False) is None
    assert domain.apply_product(renamed, product("Lamp v2", version=2), T3, created=False) is None
    assert domain.apply_product(renamed, product("Unversioned"), T3, created=False) is None


def test_an_unversioned_stock_event_never_overrides_versioned_levels():
    versioned = domain.apply_stock(None, stock(2, version=5), T1)
    assert domain.apply_stock(versioned, stock(9), T3) is None
    legacy = domain.apply_stock(None, stock(4), T1)
    upgraded = domain.apply_stock(legacy, stock(3, version=1), T1)
    assert upgraded is not None and upgraded.available_quantity == 3


def test_older_stock_event_is_ignored_and_equal_time_applies():
    entry = domain.apply_stock(None, stock(3), T2)
    assert domain.apply_stock(entry, stock(9), T1) is None
    same_time = domain.apply_stock(entry, stock(1), T2)
    assert same_time is not None and same_time.available_quantity == 1


def test_repeating_an_applied_event_changes_nothing():
    entry = domain.apply_product(None, product(), T1, created=False)
    assert domain.apply_product(entry, product(), T1, created=False) is None


def test_delete_is_final_even_before_creation():
    tombstone = domain.apply_delete(None, 7, T2)
    assert tombstone is not None and tombstone.deleted and not tombstone.searchable
    assert domain.apply_product(tombstone, product(), T1, created=True) is None
    assert domain.apply_product(tombstone, product(), T3, created=False) is None
    assert domain.apply_stock(tombstone, stock(4), T3) is None
    assert domain.apply_delete(tombstone, 7, T3) is None


def test_is_fresh_compares_timestamps():
    assert domain.is_fresh(T1, None)
    assert domain.is_fresh(T2, T1) and domain.is_fresh(T1, T1)
    assert not domain.is_fresh(T1, T2)


def test_normalize_time_makes_timestamps_comparable_as_text():
    assert domain.normalize_time("2026-02-15T14:00:00+02:00") == "2026-02-15T12:00:00.000Z"
    assert domain.normalize_time("2026-02-15T12:00:00.123456Z") == "2026-02-15T12:00:00.123Z"
    assert domain.normalize_time("not a time") == "not a time"


def test_search_filters_defaults_and_conversions():
    filters = domain.search_filters()
    assert (filters.page, filters.page_size, filters.offset, filters.q) == (1, 20, 0, None)
    filters = domain.search_filters(q="  LaMp ", category_id=3, min_price="10", max_price="19.99",
                                    in_stock="false", page=3, page_size=10)
    assert filters.q == "lamp"
    assert (filters.min_price_cents, filters.max_price_cents) == (1000, 1999)
    assert filters.in_stock is False and filters.offset == 20
    assert domain.search_filters(in_stock="TRUE").in_stock is True


@pytest.mark.parametrize("kwargs, message", [
    ({"page": 0}, "page"),
    ({"page_size": 0}, "pageSize"),
    ({"page_size": 101}, "pageSize"),
    ({"category_id": 0}, "categoryId"),
    ({"category_id": 2**64}, "categoryId"),
    ({"min_price": "abc"}, "minPrice"),
    ({"min_price": "-1"}, "minPrice"),
    ({"max_price": "NaN"}, "maxPrice"),
    ({"max_price": "Infinity"}, "maxPrice"),
    ({"max_price": "1e30"}, "maxPrice"),
    ({"min_price": "20", "max_price": "10"}, "minPrice"),
    ({"in_stock": "maybe"}, "inStock"),
    ({"q": "x" * 201}, "q"),
])
def test_search_filters_reject_bad_values(kwargs, message):
    with pytest.raises(BadRequest) as err:
        domain.search_filters(**kwargs)
    assert message in err.value.message

