"""Commands only the inventory service's own routes and timers send (the saga's are in contracts)."""

from __future__ import annotations

from microcommerce.contracts.commands import Command
from microcommerce.contracts.inventory import Reservation


class SetStock(Command, frozen=True):
    key_field = "product_id"
    product_id: int
    total_quantity: int
    actor_id: int
    actor_role: str


class ReleaseReservation(Command, frozen=True):
    key_field = "reservation_id"
    reply_type = Reservation
    reservation_id: int


class ReleaseExpired(Command, frozen=True):
    """Release every live reservation past its expiry; answers how many were released."""

    reply_type = int
    limit: int = 500
