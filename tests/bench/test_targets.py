"""Percentiles, target verdicts and the rules that make a run invalid (pure parts)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from bench import engine, load
from bench.latency import Latency, percentile, summarize
from bench.load_client import Result, SubscriberResult
from bench.report import Section, SectionStatus, targets_of
from bench.suite import DEFAULTS, SMOKE, _parser, options_of
from bench.targets import (
    ALL,
    CPU_PER_DEVICE,
    RSS_STARTUP,
    SPEEDUP,
    Comparison,
    Status,
    judge,
    mb,
    ratio,
)


def test_percentiles_are_nearest_rank() -> None:
    hundred = [float(n) for n in range(100, 0, -1)]
    assert percentile(hundred, 50) == 50
    assert percentile(hundred, 99) == 99
    assert percentile(hundred, 100) == 100
    # Fewer than 100 samples: the p99 is the worst one, never an interpolation.
    assert percentile([3.0, 1.0, 2.0], 99) == 3
    assert percentile([3.0, 1.0, 2.0], 50) == 2
    assert percentile([7.0], 1) == 7


@pytest.mark.parametrize("p", [0, -1, 101])
def test_a_percentile_out_of_range_is_refused(p: float) -> None:
    with pytest.raises(ValueError, match="percentile"):
        percentile([1.0], p)


def test_no_sample_has_no_percentile() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    assert summarize([]) == Latency(samples=0, p50_ms=None, p99_ms=None, max_ms=None)


def test_latencies_are_summarised_in_milliseconds() -> None:
    assert summarize([0.001, 0.002, 0.010]) == Latency(
        samples=3, p50_ms=2.0, p99_ms=10.0, max_ms=10.0
    )


@pytest.mark.parametrize(
    ("measured", "status"), [(2.0, Status.PASS), (3.0, Status.PASS), (3.01, Status.MISS)]
)
def test_an_upper_bound_is_met_up_to_and_including_it(measured: float, status: Status) -> None:
    verdict = judge(CPU_PER_DEVICE, measured, ran=True, valid=True, devices=1000)
    assert verdict.status is status
    assert verdict.note == ""
    assert (verdict.target, verdict.comparison, verdict.unit) == (3.0, Comparison.AT_MOST, "ms")


@pytest.mark.parametrize(
    ("measured", "status"), [(6.9, Status.MISS), (7.0, Status.PASS), (12.0, Status.PASS)]
)
def test_a_lower_bound_is_met_from_it_up(measured: float, status: Status) -> None:
    assert judge(SPEEDUP, measured, ran=True, valid=True, devices=100).status is status


def test_an_invalid_run_is_invalid_not_fast() -> None:
    verdict = judge(CPU_PER_DEVICE, 0.5, ran=True, valid=False, devices=1000, why="drops")
    assert verdict.status is Status.INVALID
    assert verdict.note == "drops"
    # A valid run that gave no number cannot pass either.
    assert judge(CPU_PER_DEVICE, None, ran=True, valid=True).status is Status.INVALID


def test_what_did_not_run_is_not_run_with_its_reason() -> None:
    verdict = judge(RSS_STARTUP, None, ran=False, valid=False, why="needs root")
    assert (verdict.status, verdict.note, verdict.measured) == (Status.NOT_RUN, "needs root", None)


def test_a_target_measured_on_another_fleet_size_says_so() -> None:
    verdict = judge(CPU_PER_DEVICE, 2.0, ran=True, valid=True, devices=5)
    assert verdict.status is Status.PASS
    assert verdict.note == "measured on 5 devices; the target is set for 1000"


def test_ratios_are_oriented_so_that_one_is_the_limit() -> None:
    assert ratio(judge(CPU_PER_DEVICE, 6.0, ran=True, valid=True)) == 2.0
    assert ratio(judge(SPEEDUP, 14.0, ran=True, valid=True)) == 0.5
    missed = next(spec for spec in ALL if spec.limit == 0)
    assert ratio(judge(missed, 0.0, ran=True, valid=True)) == 0.0
    assert math.isinf(ratio(judge(missed, 3.0, ran=True, valid=True)) or 0)
    assert ratio(judge(CPU_PER_DEVICE, None, ran=False, valid=False)) is None


def test_megabytes_are_decimal() -> None:
    assert mb(100.0) == 104.9


def _run(scenario: str, devices: int, **fields: object) -> engine.Run:
    base = engine.Run(scenario=scenario, devices=devices, join_delay_s=0.0, wave=8, valid=True)
    return engine.Run(**{**{f: getattr(base, f) for f in base.__struct_fields__}, **fields})


def _report(runs: list[engine.Run]) -> engine.Report:
    return engine.Report(
        benchmark="engine", created=datetime.now(UTC), kernel="k", cpus=2, python="3", runs=runs
    )


def test_moved_kernel_drop_counters_make_a_run_invalid() -> None:
    run = _run("zero-latency", 1000, wall_s=9.0, cpu_ms_per_device=2.0)
    assert engine.with_kernel_drops(run, {}) == run
    dropped = engine.with_kernel_drops(run, {"backlog_drops": 4})
    assert not dropped.valid
    assert (dropped.wall_s, dropped.cpu_ms_per_device) == (None, None)
    assert dropped.invalid_because == ["kernel counter backlog_drops moved by 4"]
    assert dropped.kernel_drops == {"backlog_drops": 4}


def test_engine_targets_are_judged_on_the_largest_zero_latency_run() -> None:
    runs = [
        _run("zero-latency", 100, wall_s=1.0, cpu_ms_per_device=1.0),
        _run("zero-latency", 1000, valid=False, invalid_because=["3 of 1000 devices verified"]),
        _run("join-delay", 100, vs_ideal=1.05, speedup=8.0),
        _run("serial", 100, wave=1),
    ]
    found = {
        t.name: t
        for t in targets_of(
            startup_report=None, engine_report=_report(runs), load_report=None, sections=[]
        )
    }
    cpu = found[CPU_PER_DEVICE.name]
    assert (cpu.status, cpu.devices, cpu.note) == (
        Status.INVALID, 1000, "3 of 1000 devices verified",
    )  # fmt: skip
    speedup = found[SPEEDUP.name]
    assert (speedup.status, speedup.measured, speedup.devices) == (Status.PASS, 8.0, 100)
    assert found[RSS_STARTUP.name].status is Status.NOT_RUN
    assert list(found) == [spec.name for spec in ALL]


def test_a_crashed_baseline_invalidates_the_speedup() -> None:
    runs = [
        _run("join-delay", 100, vs_ideal=1.05),
        _run("serial", 100, valid=False, invalid_because=["the run crashed: X"]),
    ]
    found = targets_of(
        startup_report=None, engine_report=_report(runs), load_report=None, sections=[]
    )
    [speedup] = [t for t in found if t.name == SPEEDUP.name]
    assert speedup.status is Status.INVALID
    assert "serial: the run crashed: X" in speedup.note


def test_a_section_that_did_not_run_gives_its_reason_to_its_targets() -> None:
    sections = [Section(name="load", status=SectionStatus.NOT_RUN, reason="not asked for")]
    found = targets_of(startup_report=None, engine_report=None, load_report=None, sections=sections)
    loaded = [t for t in found if "during a batch" in t.name or "candidates" in t.name]
    assert len(loaded) == 2
    assert {(t.status, t.note) for t in loaded} == {(Status.NOT_RUN, "not asked for")}
    # The SSE targets are the sse section's: not run either, for their own reason.
    fanned = [t for t in found if t.name.startswith("SSE ")]
    assert {(t.status, t.note) for t in fanned} == {(Status.NOT_RUN, "no sse run")}


def _result(**fields: object) -> Result:
    nothing = Latency(samples=0, p50_ms=None, p99_ms=None, max_ms=None)
    base: dict[str, object] = {
        "session_read": nothing, "devices_list": nothing, "request_errors": 0,
        "sse_latency": nothing, "sse_events": 0, "sse_span_s": None, "sse_rate_per_s": None,
        "subscribers": [], "cpu_s": 0.0,
    }  # fmt: skip
    return Result(**{**base, **fields})  # type: ignore[arg-type]


def test_missed_events_are_a_finding_but_failed_clients_invalidate_the_load_run() -> None:
    batch = _run("load", 10)
    lagging = SubscriberResult(live_events=5, missed=3, cut_off=True, settled=False, last_seq=9)
    missed = load.judge(
        batch,
        load.ClientOutcome(result=_result(subscribers=[lagging])),
        subscribers=1,
        poll_interval_s=0.1,
    )
    assert missed.valid
    assert (missed.sse_missed, missed.sse_cut_off) == (3, 1)

    failed = load.judge(
        batch,
        load.ClientOutcome(result=_result(error="the event stream answered 401")),
        subscribers=1,
        poll_interval_s=0.1,
    )
    assert not failed.valid
    assert failed.invalid_because == ["the clients: the event stream answered 401"]
    silent = load.judge(
        batch, load.ClientOutcome(errors=["the clients never got ready"]), subscribers=1,
        poll_interval_s=0.1,
    )  # fmt: skip
    assert not silent.valid
    assert silent.sse_missed is None

    unavailable = "WARNING x discovery source arp unavailable, going on without it: no CAP_NET_RAW"
    partial = load.judge(
        batch, load.ClientOutcome(result=_result(), discovery_log=[unavailable]), subscribers=1,
        poll_interval_s=0.1,
    )  # fmt: skip
    assert not partial.valid
    assert partial.invalid_because == [f"not every discovery source ran: {unavailable}"]


def test_the_command_line_overrides_the_defaults_or_the_smoke_ones() -> None:
    assert options_of(_parser().parse_args([])) == DEFAULTS
    smoke = options_of(_parser().parse_args(["--smoke", "--sections", "engine,load"]))
    assert smoke.sections == ["engine", "load"]
    assert smoke.sizes == SMOKE.sizes
    assert smoke.smoke
    custom = options_of(_parser().parse_args(["--sizes", "10,20", "--delayed", ""]))
    assert (custom.sizes, custom.delayed, custom.load_devices) == ([10, 20], [], [1000])
    with pytest.raises(SystemExit):
        _parser().parse_args(["--sections", "engine,nope"])
