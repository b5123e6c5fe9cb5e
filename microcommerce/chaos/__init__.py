"""The chaos harness: seeded faults through the real ports, a workload, a history, checkers."""
