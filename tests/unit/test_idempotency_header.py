"""The Idempotency-Key header: which keys are valid, and what makes two requests the same."""

from __future__ import annotations

import pytest

from microcommerce.errors import BadRequest, UnprocessableEntity
from microcommerce.http.idempotency import (
    IdempotencyKey,
    check_key,
    check_same_request,
    fingerprint,
)


@pytest.mark.parametrize("key", ["a", "x" * 255, "order 2026-01-01 #1", "~!@{}"])
def test_printable_ascii_keys_up_to_255_are_accepted(key):
    assert check_key(key) == key


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there", "nul\x00", "del\x7f"])
def test_other_keys_are_400(key):
    with pytest.raises(BadRequest, match="Idempotency-Key must be 1 to 255 printable ASCII characters"):
        check_key(key)


def test_the_fingerprint_ignores_json_key_order_and_spacing_only():
    base = fingerprint("POST", "/orders/me", b'{"productId": 1, "quantity": 2}')
    assert fingerprint("post", "/orders/me", b'{ "quantity":2,"productId":1 }') == base
    assert fingerprint("POST", "/orders/me", b'{"productId": 1, "quantity": 3}') != base
    assert fingerprint("POST", "/orders/me/checkout", b'{"productId": 1, "quantity": 2}') != base
    assert fingerprint("POST", "/orders/me", b"") == fingerprint("POST", "/orders/me", b"  ")
    assert fingerprint("POST", "/orders/me", b"{not json") != fingerprint("POST", "/orders/me", b"")


def test_a_key_reused_for_another_request_is_422():
    key = IdempotencyKey(key="k", fingerprint="a" * 64)
    check_same_request("a" * 64, key)
    with pytest.raises(UnprocessableEntity):
        check_same_request("b" * 64, key)
