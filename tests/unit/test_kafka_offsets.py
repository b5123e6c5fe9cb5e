"""OffsetTracker: a partition is committed only up to a prefix of settled records."""

from __future__ import annotations

from microcommerce.kafka.offsets import OffsetTracker

P0, P1 = ("t", 0), ("t", 1)


def deliver(tracker: OffsetTracker, tp, offsets) -> int:
    epochs = {tracker.delivered(tp, o) for o in offsets}
    assert len(epochs) == 1
    return epochs.pop()


def test_settled_in_order_commits_past_the_last():
    tracker = OffsetTracker()
    epoch = deliver(tracker, P0, [0, 1, 2])
    assert tracker.to_commit() == {}
    tracker.settle(P0, 0, epoch)
    tracker.settle(P0, 1, epoch)
    assert tracker.to_commit() == {P0: 2}
    tracker.settle(P0, 2, epoch)
    assert tracker.to_commit() == {P0: 3}
    assert tracker.in_flight() == 0


def test_out_of_order_settlement_waits_for_the_gap():
    tracker = OffsetTracker()
    epoch = deliver(tracker, P0, [5, 6, 7, 8])
    tracker.settle(P0, 7, epoch)
    tracker.settle(P0, 8, epoch)
    assert tracker.to_commit() == {}, "6 and 5 are not done: nothing may be committed"
    tracker.settle(P0, 5, epoch)
    assert tracker.to_commit() == {P0: 6}
    tracker.settle(P0, 6, epoch)
    assert tracker.to_commit() == {P0: 9}


def test_partitions_are_independent_and_committed_points_are_not_repeated():
    tracker = OffsetTracker()
    e0 = deliver(tracker, P0, [0, 1])
    e1 = deliver(tracker, P1, [10])
    tracker.settle(P1, 10, e1)
    assert tracker.to_commit() == {P1: 11}
    tracker.committed(P1, 11)
    assert tracker.to_commit() == {}
    tracker.settle(P0, 1, e0)
    assert tracker.to_commit() == {}
    assert tracker.in_flight(P0) == 2 and tracker.in_flight() == 2
    assert tracker.commit_point(P1) == 11 and tracker.commit_point(P0) is None


def test_a_failure_rewinds_and_ignores_settlements_of_the_old_epoch():
    tracker = OffsetTracker()
    epoch = deliver(tracker, P0, [0, 1, 2, 3])
    tracker.settle(P0, 0, epoch)
    assert tracker.rewind(P0, 2, epoch)
    assert tracker.to_commit() == {P0: 1}
    assert tracker.in_flight(P0) == 1, "2 and 3 dropped; 1 still owed"
    # Late answers about the dropped records (and a second failure) change nothing.
    assert not tracker.settle(P0, 3, epoch)
    assert not tracker.rewind(P0, 3, epoch)
    assert tracker.in_flight(P0) == 1
    # 1 was delivered before the failure: its settlement still counts once its epoch is current.
    assert not tracker.settle(P0, 1, epoch), "1 carries the old epoch: it will be redelivered too"
    new = tracker.epoch(P0)
    assert tracker.delivered(P0, 2) == new
    assert tracker.delivered(P0, 3) == new
    tracker.settle(P0, 2, new)
    tracker.settle(P0, 3, new)
    assert tracker.to_commit() == {P0: 1}, "1 is still open: 2 and 3 wait behind it"


def test_a_record_delivered_again_while_in_flight_is_refused():
    tracker = OffsetTracker()
    epoch = deliver(tracker, P0, [0, 1])
    assert tracker.delivered(P0, 1) is None
    assert tracker.delivered(P0, 0) is None
    tracker.settle(P0, 0, epoch)
    tracker.settle(P0, 1, epoch)
    assert tracker.to_commit() == {P0: 2}


def test_forget_drops_a_revoked_partition():
    tracker = OffsetTracker()
    epoch = deliver(tracker, P0, [0, 1])
    tracker.settle(P0, 0, epoch)
    tracker.forget(P0)
    assert tracker.in_flight() == 0
    assert tracker.to_commit() == {}
    assert not tracker.settle(P0, 1, epoch)
    assert tracker.delivered(P0, 0) == epoch + 1, "a fresh start may deliver any offset again"
