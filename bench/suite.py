"""The whole benchmark suite in one run: `python -m bench` (what `make bench` runs).

Sections, in order: startup (bench.startup), testbed (bench.testbed) and discovery
(bench.discovery) on the namespace tier, cloud (bench.cloud), engine (bench.engine: zero-latency
fleets, then the join-delay fleet and its one-at-a-time baseline), load (bench.load: the API
and the event streams during a batch, with every discovery source on) and sse (bench.sse: 20
event streams while the appliance publishes 500 events/s). The namespace sections
need root (or user namespaces): without, they are reported NOT RUN with the reason.

Writes bench/results/suite-<UTC time>.json (every section's own report, the machine, the
targets' verdicts) and suite-<UTC time>.png, and prints the targets, then each section's
table. Exit status: 1 when a section crashed or any of its runs is invalid (a fault, dropped
packets: its numbers would measure that, not us); 0 otherwise, also when targets are missed
(a MISS is a finding, reported, not a failure of the suite). See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Generic, TypeVar

import msgspec

from bench import cloud, discovery, engine, load, sse, startup, testbed
from bench.files import write_report
from bench.plot import plot
from bench.report import (
    Machine,
    Options,
    Section,
    SectionStatus,
    SuiteReport,
    summary,
    targets_of,
)
from orchestrator.sim.preflight import netns_available

SECTIONS = ("startup", "testbed", "discovery", "cloud", "engine", "load", "sse")
NETNS_SECTIONS = frozenset({"testbed", "discovery"})

DEFAULTS = Options(
    sections=list(SECTIONS),
    sizes=list(engine.SIZES),
    delayed=list(engine.DELAYED),
    join_delay_s=engine.JOIN_DELAY_S,
    wave=engine.WAVE,
    load_devices=[load.DEVICES],
    subscribers=load.SUBSCRIBERS,
    poll_interval_s=load.POLL_INTERVAL_S,
    startups=startup.STARTS,
    testbed_devices=list(testbed.DEVICE_COUNTS),
    discovery_devices=list(discovery.DEVICE_COUNTS),
    discovery_sources=list(discovery.SOURCES),
    cloud_devices=list(cloud.DEVICE_COUNTS),
    sse_rate_per_s=sse.RATE,
    sse_seconds=sse.SECONDS,
    sse_subscribers=sse.SUBSCRIBERS,
    seed=engine.SEED,
    smoke=False,
    profile=None,
)
SMOKE = msgspec.structs.replace(
    DEFAULTS,
    sizes=[5],
    delayed=[5],
    join_delay_s=0.1,
    load_devices=[5],
    subscribers=2,
    poll_interval_s=0.05,
    startups=2,
    testbed_devices=[2],
    discovery_devices=[3],
    discovery_sources=["all"],
    cloud_devices=[5],
    sse_rate_per_s=50.0,
    sse_seconds=1.0,
    sse_subscribers=2,
    smoke=True,
)
"""Tiny everything: the code runs end to end in well under a minute (`make test` does)."""

R = TypeVar("R")


def machine() -> Machine:
    """This machine, now."""
    cpu_model = ""
    for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
        if line.startswith(("model name", "Model")):
            cpu_model = line.split(":", 1)[1].strip()
            break
    memory_kib = 0
    for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
        if line.startswith("MemTotal:"):
            memory_kib = int(line.split()[1])
    load_average = [round(x, 2) for x in os.getloadavg()]
    return Machine(
        hostname=platform.node(),
        kernel=platform.release(),
        cpus=os.cpu_count() or 0,
        cpu_model=cpu_model,
        memory_mib=memory_kib // 1024,
        python=platform.python_version(),
        load_average_before=load_average,
        load_average_after=load_average,
    )


@dataclass(frozen=True, slots=True)
class _Outcome(Generic[R]):
    section: Section
    report: R | None = None


async def _section(
    name: str,
    options: Options,
    run: Callable[[], Awaitable[R]],
    valid: Callable[[R], bool],
) -> _Outcome[R]:
    """Run section `name` if asked for and possible here; what became of it, and its report."""
    if name not in options.sections:
        return _Outcome(Section(name=name, status=SectionStatus.NOT_RUN, reason="not asked for"))
    if name in NETNS_SECTIONS and (reason := netns_available()):
        return _Outcome(Section(name=name, status=SectionStatus.NOT_RUN, reason=reason))
    began = time.perf_counter()
    try:
        report = await run()
    except Exception as exc:  # noqa: BLE001 - a crash is the section's finding; the rest runs
        seconds = round(time.perf_counter() - began, 1)
        crashed = Section(
            name=name, status=SectionStatus.CRASHED, reason=engine.describe(exc), seconds=seconds
        )
        return _Outcome(crashed)
    seconds = round(time.perf_counter() - began, 1)
    ran = Section(name=name, status=SectionStatus.RAN, seconds=seconds, valid=valid(report))
    return _Outcome(ran, report)


def _startup_valid(report: startup.Report) -> bool:
    return report.valid


def _testbed_valid(report: testbed.Report) -> bool:
    return all(run.valid for run in report.runs)


def _discovery_valid(report: discovery.Report) -> bool:
    return all(run.valid for run in report.runs)


def _cloud_valid(report: cloud.Report) -> bool:
    return all(run.invalid is None for run in report.runs)


def _engine_valid(report: engine.Report) -> bool:
    return all(run.valid for run in report.runs)


def _load_valid(report: load.Report) -> bool:
    return all(run.valid for run in report.runs)


def _sse_valid(report: sse.Report) -> bool:
    return all(run.valid for run in report.runs)


async def run_suite(options: Options) -> SuiteReport:
    """Every section asked for, one after the other, and the targets' verdicts."""
    began, created, before = time.perf_counter(), datetime.now(UTC), machine()
    profile = Path(options.profile) if options.profile else None
    o = options

    async def run_startup() -> startup.Report:
        return await startup.run_bench(o.startups)

    async def run_testbed() -> testbed.Report:
        return await testbed.run_bench(o.testbed_devices)

    async def run_discovery() -> discovery.Report:
        return await discovery.run_bench(o.discovery_devices, o.discovery_sources)

    async def run_cloud() -> cloud.Report:
        return await cloud.run_bench(o.cloud_devices)

    async def run_engine() -> engine.Report:
        return await engine.run_bench(
            o.sizes, o.delayed, join_delay_s=o.join_delay_s, wave=o.wave, seed=o.seed,
            profile=profile,
        )  # fmt: skip

    async def run_load() -> load.Report:
        return await load.run_bench(
            o.load_devices, subscribers=o.subscribers, poll_interval_s=o.poll_interval_s,
            seed=o.seed, profile=profile,
        )  # fmt: skip

    async def run_sse() -> sse.Report:
        return await sse.run_bench(o.sse_rate_per_s, o.sse_seconds, o.sse_subscribers)

    started = await _section("startup", o, run_startup, _startup_valid)
    bed = await _section("testbed", o, run_testbed, _testbed_valid)
    found = await _section("discovery", o, run_discovery, _discovery_valid)
    registered = await _section("cloud", o, run_cloud, _cloud_valid)
    batches = await _section("engine", o, run_engine, _engine_valid)
    loaded = await _section("load", o, run_load, _load_valid)
    fanned = await _section("sse", o, run_sse, _sse_valid)
    sections = [x.section for x in (started, bed, found, registered, batches, loaded, fanned)]
    after = machine()
    return SuiteReport(
        benchmark="suite",
        created=created,
        seconds=round(time.perf_counter() - began, 1),
        machine=msgspec.structs.replace(before, load_average_after=after.load_average_before),
        options=options,
        targets=targets_of(
            startup_report=started.report,
            engine_report=batches.report,
            load_report=loaded.report,
            sse_report=fanned.report,
            sections=sections,
        ),
        sections=sections,
        startup=started.report,
        testbed=bed.report,
        discovery=found.report,
        cloud=registered.report,
        engine=batches.report,
        load=loaded.report,
        sse=fanned.report,
        valid=all(s.status is not SectionStatus.CRASHED and s.valid is not False for s in sections),
    )


def _sections_arg(text: str) -> list[str]:
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown sections {unknown}; known: {list(SECTIONS)}")
    return chosen


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sizes = engine.sizes_arg
    add = parser.add_argument
    add("--sections", type=_sections_arg, help=f"comma-separated, of {','.join(SECTIONS)}")
    add("--sizes", type=sizes, help="engine: zero-latency fleet sizes (default 100,500,1000)")
    add("--delayed", type=sizes, help="engine: join-delay fleet sizes (default 100)")
    add("--join-delay", type=float, dest="join_delay_s", help="engine: seconds (default 2)")
    add("--load-devices", type=sizes, help="load: fleet sizes (default 1000)")
    add("--subscribers", type=int, help="load: event-stream subscribers (default 20)")
    add("--poll-interval", type=float, dest="poll_interval_s", help="load: seconds (default 0.1)")
    add("--sse-rate", type=float, dest="sse_rate_per_s", help="sse: events/s (default 500)")
    add("--sse-seconds", type=float, help="sse: publishing time in s (default 20)")
    add("--sse-subscribers", type=int, help="sse: event streams (default 20)")
    add("--startups", type=int, help="startup: starts (default 5)")
    add("--seed", type=int, help="same seed, same fleets")
    add("--out", type=Path, default=engine.RESULTS_DIR, help="report directory (bench/results)")
    add("--smoke", action="store_true", help="tiny fleets everywhere: checks the code, not speed")
    add("--profile", type=Path, metavar="DIR", help="py-spy flame graphs of engine and load runs")
    return parser


def options_of(args: argparse.Namespace) -> Options:
    """The suite's options: the defaults (or the smoke ones) with what the command line set."""
    base = SMOKE if args.smoke else DEFAULTS
    given = {
        name: getattr(args, name)
        for name in (
            "sections", "sizes", "delayed", "join_delay_s", "load_devices", "subscribers",
            "poll_interval_s", "sse_rate_per_s", "sse_seconds", "sse_subscribers", "startups",
            "seed",
        )
        if getattr(args, name) is not None
    }  # fmt: skip
    profile = str(args.profile.resolve()) if args.profile else None
    return msgspec.structs.replace(base, **given, profile=profile)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite, write the report and the plot, print the summary; 1 if invalid."""
    args = _parser().parse_args(argv)
    report = asyncio.run(run_suite(options_of(args)))
    path = write_report(report, args.out)
    figure = plot(report, path.with_suffix(".png"))
    print(summary(report))
    print(f"report: {path}")
    print(f"plot: {figure}")
    return 0 if report.valid else 1
