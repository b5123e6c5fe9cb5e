"""Actor runtime on pykka: supervision, keyed workers with their own loops, bus, outbox/inbox, timers."""
