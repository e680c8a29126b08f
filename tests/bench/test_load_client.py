"""A subscriber's account of its stream: snapshot and heartbeats aside, every live sequence
number once, gaps counted, delivery latency from the event's own timestamp."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from bench.load_client import Subscriber, result_of

AT = datetime(2026, 1, 1, tzinfo=UTC)


def frame(kind: str, payload: object = None) -> bytes:
    return msgspec.json.encode(
        {"version": "1.0", "type": kind, "timestamp": AT.isoformat(), "payload": payload}
    )


def status(verified: int, failed: int = 0) -> bytes:
    return frame(
        "session.status", {"session": {"verified_count": verified, "failed_count": failed}}
    )


def test_live_frames_are_counted_and_timed_after_the_snapshot() -> None:
    s = Subscriber()
    now = AT.timestamp()
    s.frame(40, frame("connection.established"), now, devices=2)
    s.frame(40, status(0), now, devices=2)  # snapshot: carries the head
    s.frame(41, frame("device.state_changed"), now + 0.010, devices=2)
    s.frame(41, frame("connection.heartbeat"), now + 0.5, devices=2)
    s.frame(42, status(1), now + 0.020, devices=2)
    assert (s.head, s.live, s.gaps, s.settled) == (40, 2, 0, False)
    assert [round(x, 6) for x in s.latencies] == [0.010, 0.020]
    s.frame(43, status(1, 1), now + 0.001, devices=2)
    assert s.settled
    assert s.last_seq == 43


def test_a_gap_in_the_sequence_numbers_is_a_missed_event() -> None:
    s = Subscriber()
    s.frame(10, frame("connection.established"), 0.0, devices=1)
    s.frame(11, frame("device.state_changed"), 0.0, devices=1)
    s.frame(14, frame("device.state_changed"), 0.0, devices=1)
    assert s.gaps == 2


def test_a_subscriber_cut_off_missed_everything_after_its_last_event() -> None:
    whole, cut = Subscriber(), Subscriber()
    for s in (whole, cut):
        s.frame(0, frame("connection.established"), 0.0, devices=1)
        s.frame(1, frame("device.state_changed"), 0.0, devices=1)
    whole.frame(2, frame("device.state_changed"), 0.0, devices=1)
    whole.frame(3, status(1), 0.0, devices=1)
    cut.ended = True
    result = result_of([whole, cut], [], [], [], None)
    assert [(r.missed, r.cut_off, r.settled) for r in result.subscribers] == [
        (0, False, True),
        (2, True, False),
    ]
    assert result.sse_events == 3
    assert result.error is None
