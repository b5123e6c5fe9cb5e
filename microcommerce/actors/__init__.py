"""Actor runtime: the runner port and its two runners (threaded on pykka, deterministic), supervision,
keyed workers, bus, outbox/inbox, timers."""
