"""Import every contract so the event registry knows all event types (decoding needs it)."""

from microcommerce.contracts import audit, cart, inventory, order, payment, product, user  # noqa: F401
