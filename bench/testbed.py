"""Set-up and teardown time of the namespace test bed: `python -m bench.testbed`.

A run is invalid when the kernel dropped packets (backlog or neighbour table overflow, or a
bridge drop), when a device went without a lease, or when something was left behind: its
times then measure the overload, not the bed. The report goes to bench/results/ as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from bench.files import write_report
from orchestrator.sim.kernel import read_drop_counters
from orchestrator.sim.preflight import netns_available
from orchestrator.sim.testbed import TestBed

DEVICE_COUNTS = (10, 50, 200)
RESULTS_DIR = Path(__file__).parent / "results"


class Run(msgspec.Struct, frozen=True, kw_only=True):
    """One bed built and torn down."""

    devices: int
    setup_s: float
    teardown_s: float
    leased: int
    kernel_drops: dict[str, int]
    bridge_drops: dict[str, int]
    leftovers: list[str]
    kernel_limits: dict[str, int]
    valid: bool
    invalid_because: list[str]


class Report(msgspec.Struct, frozen=True, kw_only=True):
    """Every run of one invocation, with the machine it ran on."""

    benchmark: str
    created: datetime
    kernel: str
    cpus: int
    runs: list[Run]


async def measure(devices: int) -> Run:
    """Build a bed of `devices` devices, tear it down, and judge the run."""
    before = read_drop_counters()
    started = time.perf_counter()
    async with TestBed.build(devices=devices) as bed:
        built = time.perf_counter()
        leased = len({lease.ip for lease in bed.dhcp.leases()})
        bridge_drops = await bed.bridge_drops()
        ending = time.perf_counter()
    ended = time.perf_counter()
    kernel_drops = read_drop_counters().moved_since(before)
    leftovers = bed.leftovers()
    reasons = _invalid_because(devices, leased, kernel_drops, bridge_drops, leftovers)
    return Run(
        devices=devices,
        setup_s=round(built - started, 4),
        teardown_s=round(ended - ending, 4),
        leased=leased,
        kernel_drops=kernel_drops,
        bridge_drops=bridge_drops,
        leftovers=leftovers,
        kernel_limits=bed.kernel_limits,
        valid=not reasons,
        invalid_because=reasons,
    )


def _invalid_because(
    devices: int,
    leased: int,
    kernel_drops: dict[str, int],
    bridge_drops: dict[str, int],
    leftovers: list[str],
) -> list[str]:
    reasons = [f"kernel counter {name} moved by {n}" for name, n in kernel_drops.items()]
    reasons += [f"{name} dropped {n} packets" for name, n in bridge_drops.items() if n]
    if leased != devices:
        reasons.append(f"{leased} of {devices} devices leased")
    reasons += [f"left behind: {item}" for item in leftovers]
    return reasons


async def run_bench(device_counts: Sequence[int], *, repeat: int = 1) -> Report:
    """Measure each device count `repeat` times, one bed at a time."""
    runs = [await measure(n) for n in device_counts for _ in range(repeat)]
    return Report(
        benchmark="testbed",
        created=datetime.now(UTC),
        kernel=platform.release(),
        cpus=os.cpu_count() or 0,
        runs=runs,
    )


def table(report: Report) -> str:
    """The report as a text table."""
    lines = [f"{'devices':>7}  {'setup s':>8}  {'teardown s':>10}  {'leased':>6}  valid"]
    for run in report.runs:
        verdict = "yes" if run.valid else "NO: " + "; ".join(run.invalid_because)
        lines.append(
            f"{run.devices:>7}  {run.setup_s:>8.3f}  {run.teardown_s:>10.3f}  "
            f"{run.leased:>6}  {verdict}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, write the report, print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.testbed", description=__doc__)
    parser.add_argument("--devices", type=int, nargs="+", default=list(DEVICE_COUNTS))
    parser.add_argument("--repeat", type=int, default=1, help="runs per device count")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="report directory")
    args = parser.parse_args(argv)
    if reason := netns_available():
        print(f"bench.testbed: cannot run: {reason}", file=sys.stderr)
        return 2
    report = asyncio.run(run_bench(args.devices, repeat=args.repeat))
    path = write_report(report, args.out)
    print(table(report))
    print(f"report: {path}")
    # An invalid run is a finding recorded in the report, not a failure of the benchmark.
    return 0


if __name__ == "__main__":
    sys.exit(main())
