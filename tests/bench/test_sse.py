"""The SSE benchmark's pure parts: the publisher's absolute schedule, the verdict on a run that
fell behind, the synthetic payloads, and each subscriber's account of missed events."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec
import pytest

from bench.latency import summarize
from bench.load_client import Subscriber
from bench.report import targets_of
from bench.sse import (
    ClientOutcome,
    Pacing,
    Report,
    Run,
    Window,
    achieved_rate,
    fell_behind,
    judge,
    pace,
    run_bench,
    synthetic_payloads,
)
from bench.sse_client import End, Result, StreamResult, reached, stream_result
from bench.targets import SSE_MISSED, SSE_P99, Status
from orchestrator.domain.candidate import CandidateState
from orchestrator.domain.mac import parse_mac

AT = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    """A clock that sleeping and sending move forward, nothing else."""

    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.t += seconds


async def paced(
    count: int, rate: float, cost: Callable[[int], float]
) -> tuple[Pacing, list[float]]:
    clock, starts = Clock(), []

    async def send(i: int) -> None:
        starts.append(clock.t - 1000.0)
        clock.t += cost(i)

    pacing = await pace(count, rate, send, now=clock.now, sleep=clock.sleep)
    return pacing, starts


async def test_sends_start_on_their_slots() -> None:
    pacing, starts = await paced(5, 500.0, lambda _: 0.0005)
    assert starts == pytest.approx([0.0, 0.002, 0.004, 0.006, 0.008])
    assert pacing.sent == 5
    assert pacing.max_late_s == pytest.approx(0.0)
    assert achieved_rate(pacing) == pytest.approx(500.0)


async def test_a_slow_send_is_caught_up_and_does_not_shift_the_schedule() -> None:
    # The third send takes 5 ms, two and a half slots: the ones already due go at once, and
    # the schedule after them is where it always was (sleeping per event would drift).
    pacing, starts = await paced(8, 500.0, lambda i: 0.005 if i == 2 else 0.0001)
    assert starts == pytest.approx([0.0, 0.002, 0.004, 0.009, 0.0091, 0.010, 0.012, 0.014])
    assert pacing.max_late_s == pytest.approx(0.003)
    assert achieved_rate(pacing) == pytest.approx(500.0)


async def test_a_publisher_slower_than_its_rate_falls_behind() -> None:
    pacing, _ = await paced(100, 500.0, lambda _: 0.0025)
    rate = achieved_rate(pacing)
    assert rate == pytest.approx(400.0)
    assert fell_behind(rate, 500.0)
    assert pacing.max_late_s == pytest.approx(99 * 0.0005)


def test_falling_behind_is_more_than_ten_percent_below_the_rate() -> None:
    assert not fell_behind(500.0, 500.0)
    assert not fell_behind(450.0, 500.0)
    assert fell_behind(449.9, 500.0)
    assert fell_behind(None, 500.0)
    one = Pacing(sent=1, first_s=0.0, last_s=0.0, max_late_s=0.0)
    assert achieved_rate(one) is None


def test_the_payloads_walk_the_fleet_through_its_lifecycle_in_waves() -> None:
    payloads = synthetic_payloads(2)
    seen = [next(payloads) for _ in range(10)]
    assert [p.mac for p in seen[:2]] == [parse_mac("02:5e:00:00:00:00"), parse_mac("025e00000001")]
    assert [(p.previous_state, p.new_state, p.progress) for p in seen[::2]] == [
        (CandidateState.DISCOVERED, CandidateState.PROVISIONING, 25),
        (CandidateState.PROVISIONING, CandidateState.PROVISIONED, 50),
        (CandidateState.PROVISIONED, CandidateState.VERIFYING, 75),
        (CandidateState.VERIFYING, CandidateState.VERIFIED, 100),
        (CandidateState.DISCOVERED, CandidateState.PROVISIONING, 25),  # and again
    ]
    # Exactly the wire shape the appliance streams (no unset `error`).
    assert b'"error"' not in msgspec.json.encode(seen[0])


def frame(kind: str = "device.state_changed") -> bytes:
    return msgspec.json.encode({"version": "1.0", "type": kind, "timestamp": AT.isoformat()})


def account(head: int, seqs: list[int]) -> Subscriber:
    s = Subscriber()
    s.frame(head, frame("connection.established"), 0.0, 0)
    for seq in seqs:
        s.frame(seq, frame(), 0.0, 0)
    return s


def test_a_subscriber_that_saw_every_event_missed_none() -> None:
    s = account(10, [11, 12, 13])
    end = End(first_seq=11, last_seq=13)
    assert reached(s, 13)
    assert stream_result(s, ended=False, end=end) == StreamResult(
        head=10, live_events=3, last_seq=13, missed=0, cut_off=False
    )


def test_gaps_and_what_followed_a_cut_off_are_missed() -> None:
    s = account(10, [11, 13, 14])  # 12 skipped, then the stream ended at 14 of 20
    result = stream_result(s, ended=True, end=End(first_seq=11, last_seq=20))
    assert not reached(s, 20)
    assert (result.missed, result.cut_off) == (1 + 6, True)


def test_a_subscriber_that_saw_nothing_missed_everything_published() -> None:
    s = account(10, [])
    result = stream_result(s, ended=True, end=End(first_seq=11, last_seq=15))
    assert (result.live_events, result.missed, result.cut_off) == (0, 5, True)
    # Still reading when the grace ran out: missed, but not cut off.
    slow = stream_result(account(10, [11, 12]), ended=False, end=End(first_seq=11, last_seq=15))
    assert (slow.missed, slow.cut_off) == (3, False)


def test_nothing_published_nothing_missed() -> None:
    s = account(10, [])
    assert reached(s, None)
    assert stream_result(s, ended=False, end=End(first_seq=None, last_seq=None)).missed == 0


def result(missed: int, *, error: str | None = None) -> Result:
    stream = StreamResult(head=0, live_events=10, last_seq=10, missed=missed, cut_off=False)
    return Result(
        latency=summarize([0.001, 0.002]), delivered=10, streams=[stream, stream], cpu_s=0.1,
        error=error,
    )  # fmt: skip


def window(sent: int, last_s: float) -> Window:
    pacing = Pacing(sent=sent, first_s=0.0, last_s=last_s, max_late_s=0.0)
    return Window(pacing=pacing, first_seq=1, last_seq=sent, cpu_s=0.5, loop_cpu_s=0.4, wall_s=1.0)


RUN = Run(rate_per_s=500.0, seconds=1.0, subscribers=2, queue_size=1000)


def test_missed_events_are_a_finding_not_an_invalid_run() -> None:
    judged = judge(RUN, window(500, 0.998), ClientOutcome(result=result(3)), [])
    assert judged.valid, judged.invalid_because
    assert (judged.missed, judged.published, judged.achieved_rate_per_s) == (6, 500, 500.0)
    assert judged.cpu_percent == 50.0


def test_a_run_whose_publisher_fell_behind_is_invalid() -> None:
    judged = judge(RUN, window(500, 1.5), ClientOutcome(result=result(0)), [])
    assert not judged.valid
    assert judged.invalid_because == ["the publisher fell behind: 333 events/s of 500 asked for"]


def test_a_failed_client_or_an_error_logged_makes_the_run_invalid() -> None:
    failed = judge(RUN, window(500, 0.998), ClientOutcome(result=result(0, error="boom")), [])
    assert failed.invalid_because == ["the subscribers: boom"]
    record = logging.LogRecord("orchestrator", logging.ERROR, __file__, 1, "disk full", None, None)
    warned = logging.LogRecord("orchestrator", logging.WARNING, __file__, 1, "slow", None, None)
    logged = judge(RUN, window(500, 0.998), ClientOutcome(result=result(0)), [record, warned])
    assert logged.invalid_because == ["the appliance logged: disk full"]
    assert logged.warnings == ["slow"]
    silent = judge(RUN, Window(), ClientOutcome(errors=["not ready"]), [])
    assert (silent.valid, silent.invalid_because, silent.latency) == (False, ["not ready"], None)


def report_of(run: Run) -> Report:
    return Report(benchmark="sse", created=AT, kernel="k", cpus=2, python="3.11", runs=[run])


def test_the_sse_targets_are_judged_on_the_sse_run() -> None:
    full = Run(rate_per_s=500.0, seconds=20.0, subscribers=20, queue_size=1000)
    judged = judge(full, window(10_000, 19.998), ClientOutcome(result=result(1)), [])
    found = {
        t.name: t
        for t in targets_of(
            startup_report=None, engine_report=None, load_report=None,
            sse_report=report_of(judged), sections=[],
        )
    }  # fmt: skip
    p99, missed = found[SSE_P99.name], found[SSE_MISSED.name]
    assert (p99.status, p99.measured, p99.note) == (Status.PASS, 2.0, "")
    assert (missed.status, missed.measured, missed.note) == (Status.MISS, 2.0, "")

    # Another load than the targets': measured, and said so.
    small = judge(RUN, window(500, 0.998), ClientOutcome(result=result(0)), [])
    [p99, missed] = [
        t
        for t in targets_of(
            startup_report=None, engine_report=None, load_report=None,
            sse_report=report_of(small), sections=[],
        )
        if t.name in (SSE_P99.name, SSE_MISSED.name)
    ]  # fmt: skip
    assert missed.status is Status.PASS
    assert p99.note == "2 subscribers at 500 events/s; the target is set for 20 at 500"

    behind = judge(full, window(10_000, 30.0), ClientOutcome(result=result(0)), [])
    [p99, _] = [
        t
        for t in targets_of(
            startup_report=None, engine_report=None, load_report=None,
            sse_report=report_of(behind), sections=[],
        )
        if t.name in (SSE_P99.name, SSE_MISSED.name)
    ]  # fmt: skip
    assert p99.status is Status.INVALID
    assert p99.note.startswith("the publisher fell behind: 333 events/s")


async def test_a_tiny_run_of_the_real_appliance_delivers_every_event() -> None:
    [run] = (await run_bench(rate=100.0, seconds=0.5, subscribers=3)).runs
    assert run.valid, run.invalid_because
    assert (run.published, run.queue_size) == (50, 1000)
    assert run.first_seq is not None
    assert run.last_seq == run.first_seq + 49
    assert run.latency is not None
    assert run.latency.samples == run.delivered == 150
    assert (run.missed, run.cut_off, run.dropped_by_server) == (0, 0, 0)
    assert run.cpu_s is not None
    assert run.client_cpu_s is not None
