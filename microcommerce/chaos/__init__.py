"""The chaos-testing harness: seeded faults through the real ports, virtual shoppers, a history
of their operations, invariant checkers and a report (`microcommerce chaos`, docs/chaos.md)."""
