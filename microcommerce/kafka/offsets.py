"""Which offsets of a partition may be committed: only a prefix of delivered records all settled.

Consumers settle records out of order (one worker per key), but a Kafka commit is one offset
per partition meaning "everything before this is done". The tracker keeps, per partition, the
delivered offsets in order and the ones settled, and moves the commit point over the settled
prefix. Each partition has an epoch: a seek back (a failure) or a rebalance starts a new one,
and a settlement from an older epoch is ignored (its record is delivered again anyway).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field


@dataclass
class _Partition:
    epoch: int = 0
    pending: deque[int] = field(default_factory=deque)  # delivered, in offset order
    members: set[int] = field(default_factory=set)      # the same offsets, for lookups
    settled: set[int] = field(default_factory=set)      # settled but behind an unsettled offset
    commit_at: int | None = None                        # next offset to read, once committed
    committed: int | None = None                        # the last commit_at the broker accepted


class OffsetTracker:
    """Per-partition delivered/settled offsets; not thread-safe (the consumer thread owns it)."""

    def __init__(self) -> None:
        self._parts: dict[Hashable, _Partition] = {}

    def _part(self, tp: Hashable) -> _Partition:
        part = self._parts.get(tp)
        if part is None:
            part = self._parts[tp] = _Partition()
        return part

    def delivered(self, tp: Hashable, offset: int) -> int | None:
        """Record a delivered offset; returns the epoch to settle it with, or None when the offset
        is not past the last one delivered (already in flight: don't deliver it twice)."""
        part = self._part(tp)
        if part.pending and offset <= part.pending[-1]:
            return None
        part.pending.append(offset)
        part.members.add(offset)
        return part.epoch

    def settle(self, tp: Hashable, offset: int, epoch: int) -> bool:
        """Mark an offset done; False (and nothing changes) when it belongs to an older epoch."""
        part = self._parts.get(tp)
        if part is None or part.epoch != epoch or offset not in part.members:
            return False
        part.settled.add(offset)
        while part.pending and part.pending[0] in part.settled:
            done = part.pending.popleft()
            part.members.discard(done)
            part.settled.discard(done)
            part.commit_at = done + 1
        return True

    def rewind(self, tp: Hashable, offset: int, epoch: int) -> bool:
        """A failure at `offset`: forget it and every later offset (they will be delivered again).

        Returns False for a failure from an older epoch (already rewound, or reassigned).
        """
        part = self._parts.get(tp)
        if part is None or part.epoch != epoch or offset not in part.members:
            return False
        part.epoch += 1
        while part.pending and part.pending[-1] >= offset:
            dropped = part.pending.pop()
            part.members.discard(dropped)
            part.settled.discard(dropped)
        return True

    def forget(self, tp: Hashable) -> None:
        """Partition revoked or newly assigned: nothing in flight counts any more."""
        part = self._parts.pop(tp, None)
        if part is not None:
            self._parts[tp] = _Partition(epoch=part.epoch + 1)

    def epoch(self, tp: Hashable) -> int:
        return self._part(tp).epoch

    def to_commit(self) -> dict[Hashable, int]:
        """Partition → next offset to read, for each partition whose commit point moved."""
        return {tp: part.commit_at for tp, part in self._parts.items()
                if part.commit_at is not None and part.commit_at != part.committed}

    def committed(self, tp: Hashable, offset: int) -> None:
        """The broker accepted a commit of `offset` (the next offset to read)."""
        part = self._parts.get(tp)
        if part is not None and (part.committed is None or offset > part.committed):
            part.committed = offset

    def commit_point(self, tp: Hashable) -> int | None:
        """The last committed (or else committable) next offset of a partition, if known."""
        part = self._parts.get(tp)
        if part is None:
            return None
        return part.committed if part.committed is not None else part.commit_at

    def in_flight(self, tp: Hashable | None = None) -> int:
        """Delivered and not yet committable offsets (of one partition, or all)."""
        if tp is not None:
            part = self._parts.get(tp)
            return len(part.pending) if part else 0
        return sum(len(part.pending) for part in self._parts.values())
