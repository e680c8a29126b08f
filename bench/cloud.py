"""ThingsBoard registration of many thermal cameras at once: `python -m bench.cloud`.

N reference devices (the thermal camera's start-up flow, `orchestrator.device.cloud`) register
concurrently with the ThingsBoard stand-in on loopback, each from its own config directory
(provision.txt, provision.json, thermal_config.json). Reported per N: the wall time until the
last is registered, and each registration's own time (p50, p99, max). A run in which any device
failed or retried is invalid: its times would measure the failures. Reports go to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from orchestrator.device.cloud import Outcome, request_provisioning, start_up
from orchestrator.protocol.messages import CloudProvisioning
from orchestrator.sim.thingsboard import ProvisionProfile, ThingsBoardSpec, thingsboard_standin

DEVICE_COUNTS = (100, 300, 1000)
RESULTS_DIR = Path(__file__).parent / "results"
KEY, SECRET = "bench-key", "bench-secret"
BUDGET_S = 120.0


class Run(msgspec.Struct, frozen=True, kw_only=True):
    """N devices registering at once."""

    devices: int
    wall_s: float
    p50_s: float
    p99_s: float
    max_s: float
    registered: int
    retries: int
    invalid: str | None = None


class Report(msgspec.Struct, frozen=True, kw_only=True):
    """One benchmark run."""

    started_at: datetime
    python: str
    machine: str
    runs: list[Run]


async def _no_retry(seconds: float) -> None:
    raise RuntimeError(f"a device paused {seconds} s to retry: the run is invalid")


async def measure(devices: int) -> Run:
    """Register `devices` thermal cameras concurrently against a fresh stand-in."""
    spec = ThingsBoardSpec(profiles=(ProvisionProfile(key=KEY, secret=SECRET),))
    async with thingsboard_standin(spec) as tb:
        cloud = CloudProvisioning(
            provider="thingsboard", host=tb.host, port=tb.port,
            provision_device_key=KEY, provision_device_secret=SECRET,
        )  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="bench-cloud-") as workdir:
            homes = [Path(workdir) / f"cam-{i:04}" for i in range(devices)]
            for home in homes:
                home.mkdir()
                (home / "thermal_config.json").write_text(json.dumps({"measurement_spots": []}))
                await request_provisioning(home, cloud)
            took: list[float] = []

            async def one(home: Path) -> Outcome:
                began = time.perf_counter()
                start = await start_up(home, sleep=_no_retry)
                took.append(time.perf_counter() - began)
                return start.result.outcome

            began = time.perf_counter()
            async with asyncio.timeout(BUDGET_S), asyncio.TaskGroup() as group:
                tasks = [group.create_task(one(home)) for home in homes]
            wall = time.perf_counter() - began
        outcomes = [t.result() for t in tasks]
        registered = outcomes.count(Outcome.REGISTERED)
        invalid = None
        if registered != devices or len(tb.devices) != devices:
            invalid = f"{devices - registered} devices did not register"
    ordered = sorted(took)
    return Run(
        devices=devices,
        wall_s=wall,
        p50_s=statistics.median(ordered),
        p99_s=ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        max_s=ordered[-1],
        registered=registered,
        retries=0,
        invalid=invalid,
    )


def table(report: Report) -> str:
    """The summary printed after a run."""
    rows = [
        f"{run.devices:7d}  {run.wall_s:6.2f}  {run.p50_s:6.3f}  {run.p99_s:6.3f}  "
        f"{run.max_s:6.3f}  {run.registered:10d}  {run.invalid or 'yes'}"
        for run in report.runs
    ]
    return "\n".join(["devices  wall s   p50 s   p99 s   max s   registered  valid", *rows])


async def run_bench(device_counts: Sequence[int]) -> Report:
    """Every size, smallest first."""
    started = datetime.now(UTC)
    runs = [await measure(n) for n in sorted(device_counts)]
    return Report(
        started_at=started, python=sys.version.split()[0], machine=platform.machine(), runs=runs
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run, write the JSON report, print the table; non-zero when a run is invalid."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--devices", default=",".join(map(str, DEVICE_COUNTS)), help="comma-separated sizes"
    )
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.devices.split(",") if n]
    report = asyncio.run(run_bench(counts))
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"cloud-{report.started_at:%Y%m%dT%H%M%SZ}.json"
    path.write_bytes(msgspec.json.format(msgspec.json.encode(report)))
    print(table(report))
    print(f"report: {path}")
    return 1 if any(run.invalid for run in report.runs) else 0


if __name__ == "__main__":
    sys.exit(main())
