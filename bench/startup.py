"""Start-up of the appliance: `python -m bench.startup`.

`orchestrator serve` is started several times on one data directory (the first start creates
the database, the others find it, as after a reboot), with a private Mosquitto as its broker
and mDNS discovery on loopback. Each start is timed with this process's monotonic clock from
just before the process is spawned to the first 200 from GET /api/v1/health whose status is
`ok` (polled every 10 ms, so a start is at most that much late); its VmRSS then is the "RSS
after start-up". A start that never got healthy, or whose log shows an error, is invalid.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx
import msgspec

from bench.engine import (
    RESULTS_DIR,
    ServeOptions,
    log_errors,
    rss_mib,
    serve_env,
    spawn_serve,
    stop,
    write_config,
)
from bench.files import write_report
from orchestrator.sim.broker import Broker, free_port, mosquitto
from orchestrator.sim.fleet import unique_service_type

STARTS = 5
HEALTHY_WITHIN_S = 20.0
POLL_S = 0.01
HEALTH = "/api/v1/health"


class Start(msgspec.Struct, frozen=True, kw_only=True):
    """One start of `orchestrator serve`."""

    fresh_database: bool
    healthy_s: float | None
    """Spawn to the first healthy answer; None when it never came."""
    rss_mib: float | None
    """VmRSS once healthy."""
    valid: bool
    invalid_because: list[str] = msgspec.field(default_factory=list)


class Report(msgspec.Struct, frozen=True, kw_only=True):
    """Every start of one invocation, with the machine it ran on."""

    benchmark: str
    created: datetime
    kernel: str
    cpus: int
    python: str
    starts: list[Start]
    median_s: float | None
    max_s: float | None
    """The slowest valid start (None when one was invalid: no start may be left out)."""
    max_rss_mib: float | None
    valid: bool


async def _until_healthy(client: httpx.AsyncClient, process: asyncio.subprocess.Process) -> bool:
    """Poll the health route until it answers `ok`; False if the process exited first."""
    while process.returncode is None:
        with contextlib.suppress(httpx.TransportError):
            response = await client.get(HEALTH)
            if response.status_code == 200 and response.json()["data"]["status"] == "ok":
                return True
        await asyncio.sleep(POLL_S)  # nothing to wait on but the port opening
    return False


async def start_once(broker: Broker, work: Path, *, fresh: bool) -> Start:
    """Start `orchestrator serve` once on `work`'s data directory, time it, stop it."""
    port = free_port()
    config = work / "orchestrator.toml"
    write_config(
        config, data_dir=work / "data", api_port=port, broker=broker,
        service_type=unique_service_type(), device_port=free_port(), wave=8,
        options=ServeOptions(queue_size=None),
    )  # fmt: skip
    log = work / f"orchestrator-{time.monotonic_ns()}.log"
    reasons: list[str] = []
    healthy_s = rss = None
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", timeout=1.0, trust_env=False
    ) as client:
        began = time.perf_counter()
        process = await spawn_serve(config, serve_env(broker), log)
        try:
            async with asyncio.timeout(HEALTHY_WITHIN_S):
                healthy = await _until_healthy(client, process)
            if healthy:
                healthy_s = time.perf_counter() - began
                rss = rss_mib(process.pid)
            else:
                reasons.append(f"the orchestrator exited ({process.returncode}) at start")
        except TimeoutError:
            reasons.append(f"not healthy within {HEALTHY_WITHIN_S:.0f} s")
        finally:
            await stop(process)
    if errors := log_errors(log):
        reasons.append(f"the orchestrator logged {len(errors)} errors; first: {errors[0][:300]}")
    return Start(
        fresh_database=fresh,
        healthy_s=None if healthy_s is None else round(healthy_s, 4),
        rss_mib=None if rss is None else round(rss, 1),
        valid=not reasons,
        invalid_because=reasons,
    )


async def run_bench(starts: int = STARTS) -> Report:
    """`starts` starts, one after the other, on one data directory."""
    admin = ("orchestrator", secrets.token_urlsafe(16))
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as work:
        async with mosquitto(admin=admin) as broker:
            runs = [await start_once(broker, Path(work), fresh=i == 0) for i in range(starts)]
    times = [r.healthy_s for r in runs if r.healthy_s is not None]
    valid = bool(runs) and all(r.valid for r in runs)
    return Report(
        benchmark="startup",
        created=datetime.now(UTC),
        kernel=platform.release(),
        cpus=os.cpu_count() or 0,
        python=platform.python_version(),
        starts=runs,
        median_s=round(statistics.median(times), 4) if times else None,
        max_s=max(times) if valid else None,
        max_rss_mib=max((r.rss_mib for r in runs if r.rss_mib is not None), default=None),
        valid=valid,
    )


def table(report: Report) -> str:
    """The report as a text table."""
    lines = [f"{'start':>5}  {'database':<8}  {'healthy s':>9}  {'rss MiB':>7}  valid"]
    for i, s in enumerate(report.starts, 1):
        healthy = f"{s.healthy_s:>9.3f}" if s.healthy_s is not None else f"{'-':>9}"
        rss = f"{s.rss_mib:>7.1f}" if s.rss_mib is not None else f"{'-':>7}"
        verdict = "yes" if s.valid else "INVALID: " + "; ".join(s.invalid_because)
        database = "new" if s.fresh_database else "existing"
        lines.append(f"{i:>5}  {database:<8}  {healthy}  {rss}  {verdict}")
    median = f"{report.median_s:.3f}" if report.median_s is not None else "-"
    worst = f"{report.max_s:.3f}" if report.max_s is not None else "-"
    lines.append(f"median {median} s, max {worst} s")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, write the report, print the table; 1 if any start is invalid."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.startup",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--starts", type=int, default=STARTS, help="how many (default 5)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="report directory")
    args = parser.parse_args(argv)
    report = asyncio.run(run_bench(args.starts))
    path = write_report(report, args.out)
    print(table(report))
    print(f"report: {path}")
    return 0 if report.valid else 1


if __name__ == "__main__":
    sys.exit(main())
