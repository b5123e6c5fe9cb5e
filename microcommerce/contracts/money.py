"""Money: integer cents inside services and databases; a 2-place decimal JSON number outside."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal


def to_cents(amount: float | int | str) -> int:
    return int((Decimal(str(amount)) * 100).quantize(Decimal("1"), rounding=ROUND_HALF_UP))


def from_cents(cents: int) -> float:
    return round(cents / 100, 2)
