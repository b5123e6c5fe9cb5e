"""Base of every message an actor handles: commands from HTTP routes and requests between services."""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec


class Command(msgspec.Struct, kw_only=True, tag=True, frozen=True):
    """A typed message. The tag (class name) lets a remote adapter send it over HTTP or Kafka.

    `key_field` names the field that identifies the aggregate; commands with the same key go
    to the same worker so handlers for one aggregate never race.
    `reply_type` tells a remote adapter how to decode the answer.
    `retry_transient`: may the worker rerun the handler after a deadlock rolled it back? Only
    False for handlers with an outside effect before their last transaction (a card charge).
    `idempotent`: asking twice has the effect of asking once (reads; "do X unless done"
    commands), so a remote adapter may send it again when it cannot tell whether the first
    try arrived (connection dropped, 503). Leave it False unless the handler makes it true.
    """

    key_field: ClassVar[str | None] = None
    reply_type: ClassVar[Any] = Any
    retry_transient: ClassVar[bool] = True
    idempotent: ClassVar[bool] = False

    @property
    def routing_key(self) -> Any:
        return getattr(self, self.key_field) if self.key_field else None
