"""The API under load, and memory with every discovery source on: `python -m bench.load`.

One zero-latency batch of `--devices` (default 1000) runs as in bench.engine, kept apart from
the engine's clean runs so that its CPU numbers are not polluted by the clients. The
orchestrator has every discovery source on: mDNS (as in bench.engine), `lease` reading a
dnsmasq-format lease file the bench writes with every device's MAC and address, `arp` sweeping
the fleet's address range on `lo` (the kernel answers no ARP on loopback, so the sweep finds
nothing, but its cost, scapy included, is paid), and `station` (the standby network has no
stations). The streams keep the appliance's default queue size.

Once every device is discovered, a client process (bench.load_client) subscribes
`--subscribers` event streams to the session and, while the batch runs, polls GET
/batch/{id}?include_devices=true and GET /batch/{id}/devices every `--poll-interval` s:
their latencies (p50, p99), the streams' delivery latency and missed events, the achieved
event rate (section data: the SSE targets are judged on bench.sse, at a set 500 events/s).
The orchestrator's peak RSS (VmHWM) over the run is the "RSS with 1000 candidates". The run
is invalid for the engine's reasons (bench.engine), when the clients failed, or when a
discovery source was unavailable (the orchestrator's log says so); missed events are a
finding, not an invalid run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from bench import engine
from bench.files import RunsReport, runs_report, write_report
from bench.latency import Latency
from bench.load_client import Config, Result
from orchestrator.sim.fleet import Fleet

DEVICES = 1000
SUBSCRIBERS = 20
POLL_INTERVAL_S = 0.1
LEASE_S = 3600
READY_S = 120.0
SOURCES = ("station", "lease", "mdns", "arp")


class Run(msgspec.Struct, frozen=True, kw_only=True):
    """One batch under load."""

    devices: int
    subscribers: int
    poll_interval_s: float
    sources: list[str]
    batch: engine.Run
    """The batch as bench.engine measures it (scenario `load`)."""
    session_read: Latency | None = None
    """GET /batch/{id}?include_devices=true while the batch ran."""
    devices_list: Latency | None = None
    """GET /batch/{id}/devices while the batch ran."""
    request_errors: int = 0
    sse_latency: Latency | None = None
    sse_events: int = 0
    sse_rate_per_s: float | None = None
    sse_missed: int | None = None
    """Events missed, summed over the subscribers (gaps and what followed a cut-off)."""
    sse_cut_off: int | None = None
    """Subscribers whose stream ended before the batch settled."""
    client_cpu_s: float | None = None
    discovery_log: list[str] = msgspec.field(default_factory=list)
    """The orchestrator's log lines about its discovery sources (that each one ran)."""
    rss_at_end_mib: float | None = None
    peak_rss_mib: float | None = None
    """VmHWM: the orchestrator's peak resident set over the whole run."""
    valid: bool = False
    invalid_because: list[str] = msgspec.field(default_factory=list)


Report = RunsReport[Run]
"""Every run of one invocation, with the machine it ran on."""


def lease_file(fleet: Fleet, path: Path, now: float) -> Path:
    """A dnsmasq lease file (`<expiry> <mac> <ip> <hostname> <client id>`) leasing each of
    the fleet's devices its loopback address."""
    expiry = int(now) + LEASE_S
    lines = [f"{expiry} {d.mac.lower()} {d.ip} device-{i} *\n" for i, d in enumerate(fleet.devices)]
    path.write_text("".join(lines), encoding="ascii")
    return path


def every_source(fleet: Fleet, work: Path, profile: Path | None) -> engine.ServeOptions:
    """The orchestrator's options with every discovery source on, for `fleet`."""
    return engine.ServeOptions(
        sources=SOURCES,
        lease_file=lease_file(fleet, work / "dnsmasq.leases", time.time()),
        dhcp_events_file=work / "dhcp-events",
        arp_interface="lo",
        arp_sweep=f"{fleet.devices[0].ip}-{fleet.devices[-1].ip}",
        queue_size=None,
        profile=profile,
    )


@dataclass(slots=True)
class ClientOutcome:
    """The client process's outcome, filled in when its window closes."""

    result: Result | None = None
    errors: list[str] = field(default_factory=list)
    rss_at_end_mib: float | None = None
    discovery_log: list[str] = field(default_factory=list)


DISCOVERY_LOG = ("discovery: ", "discovery source ", "ARP sweep of ", "browsing ")
"""Where the orchestrator's log tells which sources run (service, arp, mdns)."""


def discovery_lines(log: Path, limit: int = 20) -> list[str]:
    """The orchestrator log's lines about discovery sources, without their timestamps."""
    lines = log.read_text("utf-8", errors="replace").splitlines()
    found = [
        line.split(" ", 2)[-1][:300]
        for line in lines
        if any(marker in line for marker in DISCOVERY_LOG)
    ]
    return found[:limit]


def _window(
    clients: ClientOutcome, devices: int, subscribers: int, poll_interval_s: float, wave: int
) -> engine.Window:
    budget = engine.batch_budget_s(devices, 0.0, wave) + READY_S

    @contextlib.asynccontextmanager
    async def during(appliance: engine.Orchestrator, session_id: str) -> AsyncIterator[None]:
        url = appliance.client.base_url
        config = Config(
            host=url.host, port=url.port or 80, api_key=appliance.client.headers["X-API-Key"],
            session_id=session_id, devices=devices, subscribers=subscribers,
            poll_interval_s=poll_interval_s, budget_s=budget,
        )  # fmt: skip
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.load_client",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert process.stdin is not None  # noqa: S101 - PIPE asked for
        assert process.stdout is not None  # noqa: S101 - PIPE asked for
        try:
            process.stdin.write(msgspec.json.encode(config) + b"\n")
            await process.stdin.drain()
            process.stdin.close()
            try:
                async with asyncio.timeout(READY_S):
                    line = await process.stdout.readline()
            except TimeoutError:
                line = b""
            ready = line.strip() == b"ready"
            if not ready:
                # Without its clients the run measures nothing of the load: it still runs
                # (the window's owner goes on), and is invalid.
                clients.errors.append(f"the clients were not ready within {READY_S:.0f} s")
            yield
            if ready:
                try:
                    async with asyncio.timeout(budget):
                        line = await process.stdout.readline()
                except TimeoutError:
                    line = b""
                    clients.errors.append("the client process did not report in time")
            clients.rss_at_end_mib = round(engine.rss_mib(appliance.pid), 1)
            clients.discovery_log = discovery_lines(appliance.log)
            # A client that gave up before it was ready wrote its result instead of `ready`.
            if line.strip() not in (b"", b"ready"):
                clients.result = msgspec.json.decode(line, type=Result)
            elif ready:
                clients.errors.append(f"the client process ended ({process.returncode}) silently")
        finally:
            # It exits once it has reported; it is killed when it has not (a failed run).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0 if clients.result is None else engine.STOP_TIMEOUT_S):
                    await process.wait()
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            await process.wait()

    return during


async def measure(
    devices: int = DEVICES,
    *,
    subscribers: int = SUBSCRIBERS,
    poll_interval_s: float = POLL_INTERVAL_S,
    wave: int = engine.WAVE,
    seed: int = engine.SEED,
    profile: Path | None = None,
) -> Run:
    """One zero-latency batch of `devices` under load (see the module's docstring)."""
    clients = ClientOutcome()
    batch = engine.Run(scenario="load", devices=devices, join_delay_s=0.0, wave=wave)
    try:
        batch = await engine.measure_run(
            batch,
            seed=seed,
            during=_window(clients, devices, subscribers, poll_interval_s, wave),
            prepare=lambda fleet, work: every_source(fleet, work, profile),
        )
    except Exception as exc:  # noqa: BLE001 - a crash is this run's finding
        batch = engine.crashed(batch, exc)
    return judge(batch, clients, subscribers=subscribers, poll_interval_s=poll_interval_s)


def judge(
    batch: engine.Run, clients: ClientOutcome, *, subscribers: int, poll_interval_s: float
) -> Run:
    """The load run from its batch and what its clients measured."""
    result = clients.result
    reasons = list(batch.invalid_because) + clients.errors
    if result is not None and result.error:
        reasons.append(f"the clients: {result.error}")
    # Not every source on: the memory it reports is not the one the target is about.
    reasons += [
        f"not every discovery source ran: {line}"
        for line in clients.discovery_log
        if "unavailable, going on without it" in line
    ]
    run = Run(
        devices=batch.devices,
        subscribers=subscribers,
        poll_interval_s=poll_interval_s,
        sources=list(SOURCES),
        batch=batch,
        rss_at_end_mib=clients.rss_at_end_mib,
        discovery_log=clients.discovery_log,
        peak_rss_mib=batch.peak_rss_mib,
        valid=batch.valid and not reasons,
        invalid_because=reasons,
    )
    if result is None:
        return run
    return msgspec.structs.replace(
        run,
        session_read=result.session_read,
        devices_list=result.devices_list,
        request_errors=result.request_errors,
        sse_latency=result.sse_latency,
        sse_events=result.sse_events,
        sse_rate_per_s=result.sse_rate_per_s,
        sse_missed=sum(s.missed for s in result.subscribers),
        sse_cut_off=sum(s.cut_off for s in result.subscribers),
        client_cpu_s=result.cpu_s,
    )


async def run_bench(
    devices: Sequence[int] = (DEVICES,),
    *,
    subscribers: int = SUBSCRIBERS,
    poll_interval_s: float = POLL_INTERVAL_S,
    seed: int = engine.SEED,
    profile: Path | None = None,
) -> Report:
    """One load run per fleet size; with `profile` (a directory), a flame graph of each."""
    runs = [
        await measure(
            n,
            subscribers=subscribers,
            poll_interval_s=poll_interval_s,
            seed=seed,
            profile=profile / f"load-{n}.svg" if profile else None,
        )
        for n in devices
    ]
    return runs_report("load", runs)


def _ms(latency: Latency | None) -> str:
    if latency is None or latency.p50_ms is None or latency.p99_ms is None:
        return f"{'-':>17}"
    return f"{latency.p50_ms:>8.2f}/{latency.p99_ms:<8.2f}"


def table(report: Report) -> str:
    """The report as a text table."""
    lines = [
        f"{'devices':>7} {'subs':>4} {'wall s':>7} {'session p50/p99 ms':>18} "
        f"{'devices p50/p99 ms':>18} {'sse p50/p99 ms':>18} {'events':>6} {'ev/s':>6} "
        f"{'missed':>6} {'cut':>3} {'rss MiB':>7} {'peak MiB':>8}  valid"
    ]
    for r in report.runs:
        verdict = "yes" if r.valid else "INVALID: " + "; ".join(r.invalid_because)
        wall = f"{r.batch.wall_s:>7.2f}" if r.batch.wall_s is not None else f"{'-':>7}"
        rate = f"{r.sse_rate_per_s:>6.0f}" if r.sse_rate_per_s is not None else f"{'-':>6}"
        missed = f"{r.sse_missed:>6}" if r.sse_missed is not None else f"{'-':>6}"
        cut = f"{r.sse_cut_off:>3}" if r.sse_cut_off is not None else f"{'-':>3}"
        rss = f"{r.rss_at_end_mib:>7.1f}" if r.rss_at_end_mib is not None else f"{'-':>7}"
        peak = f"{r.peak_rss_mib:>8.1f}" if r.peak_rss_mib is not None else f"{'-':>8}"
        lines.append(
            f"{r.devices:>7} {r.subscribers:>4} {wall}  {_ms(r.session_read)} "
            f"{_ms(r.devices_list)} {_ms(r.sse_latency)} {r.sse_events:>6} {rate} "
            f"{missed} {cut} {rss} {peak}  {verdict}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, write the report, print the table; 1 if any run is invalid."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--devices", type=engine.sizes_arg, default=[DEVICES], help="fleet sizes (default 1000)"
    )
    parser.add_argument("--subscribers", type=int, default=SUBSCRIBERS, help="default 20")
    parser.add_argument(
        "--poll-interval", type=float, default=POLL_INTERVAL_S, help="seconds (default 0.1)"
    )
    parser.add_argument("--seed", type=int, default=engine.SEED, help="same seed, same fleet")
    parser.add_argument("--out", type=Path, default=engine.RESULTS_DIR, help="report directory")
    parser.add_argument(
        "--profile", type=Path, metavar="DIR", help="a py-spy flame graph per run, into DIR"
    )
    args = parser.parse_args(argv)
    report = asyncio.run(
        run_bench(
            args.devices,
            subscribers=args.subscribers,
            poll_interval_s=args.poll_interval,
            seed=args.seed,
            profile=args.profile,
        )
    )
    path = write_report(report, args.out)
    print(table(report))
    print(f"report: {path}")
    return 0 if all(r.valid for r in report.runs) else 1


if __name__ == "__main__":
    sys.exit(main())
