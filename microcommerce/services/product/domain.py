"""Catalog rules without I/O: names and slugs, prices, currencies, images, who may edit, paging."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation

import msgspec

from microcommerce.contracts.money import to_cents
from microcommerce.errors import BadRequest, Forbidden
from microcommerce.services.product.messages import ImageView

MAX_PRICE_CENTS = 99_999_999_99  # 99,999,999.99: fits DECIMAL(10,2) wherever a copy is kept
MAX_IMAGES = 20
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
DEFAULT_CURRENCY = "USD"
EDITOR_ROLES = ("admin", "supplier")
_SLUG_JUNK = re.compile(r"[^a-z0-9]+")
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")
_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)


class ImageInput(msgspec.Struct, kw_only=True, frozen=True):
    """One image as a client may send it: {url, isPrimary?, sortOrder?} (or just the URL)."""

    url: str
    isPrimary: bool | None = None
    sortOrder: int | None = None


def clean_name(name: str, field: str = "name") -> str:
    value = " ".join(name.split())
    if not value:
        raise BadRequest(f"{field} must not be blank")
    return value


def name_key(name: str) -> str:
    """What makes two category names "the same": case and spacing don't count."""
    return clean_name(name).casefold()


def slugify(name: str) -> str:
    """URL-safe slug: ASCII letters and digits joined by dashes ("Tees & Tops" -> "tees-tops")."""
    ascii_text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = _SLUG_JUNK.sub("-", ascii_text.lower()).strip("-")
    return slug[:200] or "category"


def unique_slug(base: str, taken: Iterable[str]) -> str:
    """`base`, or `base-2`, `base-3`, … when different names slug the same ("T-Shirts", "T Shirts")."""
    used = set(taken)
    if base not in used:
        return base
    n = 2
    while f"{base}-{n}" in used:
        n += 1
    return f"{base}-{n}"


def price_to_cents(price: float) -> int:
    """A positive amount with at most 2 decimals, as integer cents; else 400."""
    try:
        exact = Decimal(str(price))
    except InvalidOperation:
        raise BadRequest("price must be a number") from None
    if not exact.is_finite() or exact <= 0:
        raise BadRequest("price must be greater than 0")
    if exact * 100 > MAX_PRICE_CENTS:  # checked first: quantizing a huge value overflows
        raise BadRequest("price is too large")
    if exact != exact.quantize(Decimal("0.01")):
        raise BadRequest("price must have at most 2 decimal places")
    return to_cents(str(exact))


def optional_price_to_cents(price: float | None, field: str) -> int | None:
    """A price filter bound (0 allowed) in cents; None when absent."""
    if price is None:
        return None
    if not math.isfinite(price) or price > MAX_PRICE_CENTS / 100:
        raise BadRequest(f"{field} must be a finite number")
    if price < 0:
        raise BadRequest(f"{field} must not be negative")
    return to_cents(round(price, 2))


def normalize_currency(code: str) -> str:
    if not _CURRENCY.match(code):
        raise BadRequest("currency must be a 3-letter code such as USD")
    return code.upper()


def normalize_images(images: Sequence[str | ImageInput]) -> list[ImageView]:
    """Images ordered by sortOrder (then as given), renumbered 0..n-1, exactly one primary.

    A bare URL sorts at its position in the list; without an explicit primary the first image is.
    """
    if len(images) > MAX_IMAGES:
        raise BadRequest(f"at most {MAX_IMAGES} images per product")
    inputs = [ImageInput(url=image) if isinstance(image, str) else image for image in images]
    for image in inputs:
        if len(image.url) > 2048 or not _URL.match(image.url):
            raise BadRequest("images: each url must be an http(s) URL")
        if image.sortOrder is not None and image.sortOrder < 0:
            raise BadRequest("images: sortOrder must not be negative")
    if sum(1 for image in inputs if image.isPrimary) > 1:
        raise BadRequest("images: only one image may be primary")
    ordered = sorted(enumerate(inputs), key=lambda pair: (
        pair[1].sortOrder if pair[1].sortOrder is not None else pair[0], pair[0]))
    has_primary = any(image.isPrimary for image in inputs)
    return [
        ImageView(url=image.url, isPrimary=bool(image.isPrimary) or (not has_primary and position == 0),
                  sortOrder=position)
        for position, (_, image) in enumerate(ordered)
    ]


def check_can_edit(actor_role: str, actor_id: int, created_by: int | None) -> None:
    """Admins edit any product; a supplier only the products they created."""
    if actor_role == "admin":
        return
    if actor_role == "supplier" and created_by is not None and created_by == actor_id:
        return
    if actor_role == "supplier":
        raise Forbidden("Suppliers may only change their own products")
    raise Forbidden(f"Requires role: {' or '.join(EDITOR_ROLES)}")


def page_window(page: int, page_size: int) -> tuple[int, int]:
    """(page, pageSize) checked: page from 1, pageSize 1..100 (larger asks are capped)."""
    if page < 1:
        raise BadRequest("page must be 1 or more")
    if page_size < 1:
        raise BadRequest("pageSize must be 1 or more")
    return page, min(page_size, MAX_PAGE_SIZE)


def check_price_range(min_cents: int | None, max_cents: int | None) -> None:
    if min_cents is not None and max_cents is not None and min_cents > max_cents:
        raise BadRequest("minPrice must not exceed maxPrice")

