"""Runtime messages between actors of one process (never serialized, so plain slotted classes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from microcommerce.contracts.events import EventEnvelope

ReplyFn = Callable[[Any, BaseException | None], None]


@dataclass(slots=True)
class Ask:
    """A command plus where its answer goes; reply is called from the worker's thread.
    `request_id`: the HTTP request that caused it, if any (see `current_request_id`)."""

    command: Any
    reply: ReplyFn | None = None
    request_id: str | None = None


@dataclass(slots=True)
class Deliver:
    """An event for one consumer group; `done(settled)` tells the sender it was applied or
    parked (True) or must be delivered again later (False)."""

    envelope: EventEnvelope
    topic: str
    key: str
    done: Callable[[bool], None] | None = None
    request_id: str | None = None  # the HTTP request that caused the event, when known


@dataclass(slots=True)
class TimerFired:
    name: str
    message: Any


@dataclass(slots=True)
class Restart:
    reason: str


@dataclass(slots=True)
class GoDown:
    """The supervisor escalated: refuse work until the whole service restarts."""

    reason: str


@dataclass(slots=True)
class RestartService:
    """The supervisor's own timer: its escalation backoff is over."""


@dataclass(slots=True)
class StartChildren:
    """Ask a supervisor to start its children (`ChildSpec`s); it answers with their refs."""

    specs: list[Any]


@dataclass(slots=True)
class ChildFailed:
    child_id: str
    error: str


@dataclass(slots=True)
class Directive:
    """The supervisor's answer to a failure: restart after `delay_s`, or give up."""

    action: str  # "restart" | "escalate"
    delay_s: float = 0.0


@dataclass(slots=True)
class Flush:
    pass


@dataclass(slots=True)
class Poll:
    """The relay's periodic tick: unsent rows, retries, requested redrives."""
