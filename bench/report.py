"""The suite's report: every section's own report, the machine, and the targets' verdicts."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime

import msgspec

from bench import cloud, discovery, engine, load, sse, startup, targets, testbed
from bench.targets import Status, Target, judge, mb


class SectionStatus(enum.StrEnum):
    """What became of a section."""

    RAN = "ran"
    NOT_RUN = "not run"
    """Not asked for, or impossible here (the netns sections without root)."""
    CRASHED = "crashed"


class Section(msgspec.Struct, frozen=True, kw_only=True):
    """One section of the suite."""

    name: str
    status: SectionStatus
    reason: str = ""
    """Why it did not run, or how it crashed."""
    seconds: float = 0.0
    valid: bool | None = None
    """Whether every run of it counts (None when it did not run)."""


class Machine(msgspec.Struct, frozen=True, kw_only=True):
    """Where the suite ran: its numbers hold for this machine only."""

    hostname: str
    kernel: str
    cpus: int
    cpu_model: str
    memory_mib: int
    python: str
    load_average_before: list[float]
    """1, 5 and 15 minute load averages when the suite started: anything else running
    competes for the same cores."""
    load_average_after: list[float]


class Options(msgspec.Struct, frozen=True, kw_only=True):
    """What the suite was asked to do."""

    sections: list[str]
    sizes: list[int]
    delayed: list[int]
    join_delay_s: float
    wave: int
    load_devices: list[int]
    subscribers: int
    poll_interval_s: float
    startups: int
    testbed_devices: list[int]
    discovery_devices: list[int]
    discovery_sources: list[str]
    cloud_devices: list[int]
    sse_rate_per_s: float = sse.RATE
    sse_seconds: float = sse.SECONDS
    sse_subscribers: int = sse.SUBSCRIBERS
    seed: int
    smoke: bool
    profile: str | None
    """Flame graphs were recorded: py-spy's sampling costs the orchestrator CPU."""


class SuiteReport(msgspec.Struct, frozen=True, kw_only=True):
    """One run of the whole suite."""

    benchmark: str
    created: datetime
    seconds: float
    machine: Machine
    options: Options
    targets: list[Target]
    sections: list[Section]
    startup: startup.Report | None = None
    testbed: testbed.Report | None = None
    discovery: discovery.Report | None = None
    cloud: cloud.Report | None = None
    engine: engine.Report | None = None
    load: load.Report | None = None
    sse: sse.Report | None = None
    valid: bool
    """No section crashed and every run counts."""


def _largest(runs: Sequence[engine.Run], scenario: str) -> engine.Run | None:
    chosen = [r for r in runs if r.scenario == scenario]
    return max(chosen, key=lambda r: r.devices) if chosen else None


def _engine_targets(report: engine.Report | None, why: str) -> list[Target]:
    runs = report.runs if report else []
    found: list[Target] = []
    zero = _largest(runs, "zero-latency")
    if zero is None:
        missing = why or "no zero-latency run (--sizes)"
        found += [
            judge(targets.CPU_PER_DEVICE, None, ran=False, valid=False, why=missing),
            judge(targets.WALL_ZERO_LATENCY, None, ran=False, valid=False, why=missing),
        ]
    else:
        reason = "; ".join(zero.invalid_because)
        found += [
            judge(targets.CPU_PER_DEVICE, zero.cpu_ms_per_device, ran=True, valid=zero.valid,
                  devices=zero.devices, why=reason),
            judge(targets.WALL_ZERO_LATENCY, zero.wall_s, ran=True, valid=zero.valid,
                  devices=zero.devices, why=reason),
        ]  # fmt: skip
    delayed = next((r for r in runs if r.scenario == "join-delay"), None)
    if delayed is None:
        missing = why or "no join-delay run (--delayed)"
        found += [
            judge(targets.VS_IDEAL, None, ran=False, valid=False, why=missing),
            judge(targets.SPEEDUP, None, ran=False, valid=False, why=missing),
        ]
        return found
    serial = next(
        (r for r in runs if r.scenario == "serial" and r.devices == delayed.devices), None
    )
    both = [delayed] + ([serial] if serial else [])
    reason = "; ".join(f"{r.scenario}: {'; '.join(r.invalid_because)}" for r in both if not r.valid)
    found += [
        judge(targets.VS_IDEAL, delayed.vs_ideal, ran=True, valid=delayed.valid,
              devices=delayed.devices, why=reason),
        judge(targets.SPEEDUP, delayed.speedup, ran=serial is not None,
              valid=all(r.valid for r in both), devices=delayed.devices,
              why=reason if serial else "no one-at-a-time baseline"),
    ]  # fmt: skip
    return found


def _load_targets(report: load.Report | None, why: str) -> list[Target]:
    """The session read and the memory; the load run's own SSE numbers are section data
    (the SSE targets are judged on the sse section)."""
    specs = (targets.SESSION_READ_P99, targets.RSS_LOADED)
    if report is None or not report.runs:
        return [judge(s, None, ran=False, valid=False, why=why or "no load run") for s in specs]
    run = max(report.runs, key=lambda r: r.devices)
    reason = "; ".join(run.invalid_because)
    read = run.session_read.p99_ms if run.session_read else None
    rss = mb(run.peak_rss_mib) if run.peak_rss_mib is not None else None
    return [
        judge(s, value, ran=True, valid=run.valid, devices=run.devices, why=reason)
        for s, value in zip(specs, (read, rss), strict=True)
    ]


def _sse_targets(report: sse.Report | None, why: str) -> list[Target]:
    specs = (targets.SSE_P99, targets.SSE_MISSED)
    if report is None or not report.runs:
        return [judge(s, None, ran=False, valid=False, why=why or "no sse run") for s in specs]
    [run] = report.runs
    reason = "; ".join(run.invalid_because)
    p99 = run.latency.p99_ms if run.latency else None
    missed = None if run.missed is None else float(run.missed)
    found = [
        judge(s, value, ran=True, valid=run.valid, why=reason)
        for s, value in zip(specs, (p99, missed), strict=True)
    ]
    if (run.subscribers, run.rate_per_s) == (targets.SSE_SUBSCRIBERS, targets.SSE_RATE_PER_S):
        return found
    # The targets are set for 20 subscribers at 500 events/s: say when that is not what ran.
    note = (
        f"{run.subscribers} subscribers at {run.rate_per_s:g} events/s; the target is set for "
        f"{targets.SSE_SUBSCRIBERS} at {targets.SSE_RATE_PER_S:g}"
    )
    return [msgspec.structs.replace(t, note="; ".join(filter(None, (t.note, note)))) for t in found]


def _startup_targets(report: startup.Report | None, why: str) -> list[Target]:
    if report is None:
        return [
            judge(s, None, ran=False, valid=False, why=why or "not run")
            for s in (targets.RSS_STARTUP, targets.STARTUP)
        ]
    reason = "; ".join(r for s in report.starts for r in s.invalid_because)
    rss = mb(report.max_rss_mib) if report.max_rss_mib is not None else None
    return [
        judge(targets.RSS_STARTUP, rss, ran=True, valid=report.valid, why=reason),
        judge(targets.STARTUP, report.max_s, ran=True, valid=report.valid, why=reason),
    ]


def targets_of(
    *,
    startup_report: startup.Report | None,
    engine_report: engine.Report | None,
    load_report: load.Report | None,
    sse_report: sse.Report | None = None,
    sections: Sequence[Section],
) -> list[Target]:
    """Every target's verdict, in `targets.ALL`'s order."""
    why = {s.name: s.reason for s in sections if s.status is not SectionStatus.RAN}
    found = [
        *_engine_targets(engine_report, why.get("engine", "")),
        *_load_targets(load_report, why.get("load", "")),
        *_sse_targets(sse_report, why.get("sse", "")),
        *_startup_targets(startup_report, why.get("startup", "")),
    ]
    order = {spec.name: i for i, spec in enumerate(targets.ALL)}
    return sorted(found, key=lambda t: order[t.name])


def targets_table(found: Sequence[Target]) -> str:
    """The targets as a text table."""
    width = max((len(t.name) for t in found), default=10)
    lines = [f"{'target':<{width}}  {'measured':>10}  {'':<6}  {'target':>9}  {'verdict':<7}  note"]
    for t in found:
        measured = f"{t.measured:>10.2f}" if t.measured is not None else f"{'-':>10}"
        limit = f"{t.comparison} {t.target:g}"
        lines.append(
            f"{t.name:<{width}}  {measured}  {t.unit:<6}  {limit:>9}  {t.status:<7}  {t.note}"
        )
    return "\n".join(lines)


def summary(report: SuiteReport) -> str:
    """Targets first, then each section's own table."""
    counts = {s: sum(t.status is s for t in report.targets) for s in Status}
    tally = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    parts = [f"== targets ({tally})", targets_table(report.targets)]
    if report.options.smoke:
        parts.append("(--smoke: tiny fleets; the verdicts say nothing about performance)")
    if report.options.profile:
        parts.append("(--profile: py-spy sampled the orchestrator; its CPU numbers are inflated)")
    for section in report.sections:
        header = f"== {section.name} ({section.status}, {section.seconds:.1f} s)"
        parts.append(header)
        if (rendered := _section_table(report, section.name)) is not None:
            parts.append(rendered)
        if section.reason:
            parts.append(f"{section.status.upper()}: {section.reason}")
    parts.append(f"== suite: {'valid' if report.valid else 'INVALID'} in {report.seconds:.0f} s")
    return "\n".join(parts)


def _section_table(report: SuiteReport, name: str) -> str | None:  # noqa: PLR0911 - a dispatch
    match name:
        case "startup" if report.startup:
            return startup.table(report.startup)
        case "testbed" if report.testbed:
            return testbed.table(report.testbed)
        case "discovery" if report.discovery:
            return discovery.table(report.discovery)
        case "cloud" if report.cloud:
            return cloud.table(report.cloud)
        case "engine" if report.engine:
            return engine.table(report.engine)
        case "load" if report.load:
            return load.table(report.load)
        case "sse" if report.sse:
            return sse.table(report.sse)
    return None
