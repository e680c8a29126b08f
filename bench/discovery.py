"""Discovery latency per source: `python -m bench.discovery`.

For each fleet size and each source alone (and all of them merged), a namespace-tier fleet of
reference devices is built (real DHCP leases, mDNS adverts, device HTTP APIs), then discovery
starts in the Pi's namespace and the time until each device's sighting (its probe answered:
what becomes `device.discovered`) is recorded. Station events carry no address, so alone they
cannot lead to a probe: for `station` the time is until the access point lists the device
(the clue that, merged with any address, starts its probe). Clock zero is the start of
discovery with every device already associated: the case of a batch whose devices all joined
at once, the worst case for a source (everyone to find and probe together). Reports go to
bench/results/.

A run is invalid when the kernel dropped packets or a device was never found.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime
from ipaddress import IPv4Address
from pathlib import Path

import msgspec

from bench.files import write_report
from orchestrator.discovery.arp import ArpSource, address_range
from orchestrator.discovery.leases import LeaseSource, write_hook
from orchestrator.discovery.mdns import MdnsSource
from orchestrator.discovery.service import Discovery
from orchestrator.discovery.stations import StationSource
from orchestrator.domain.discovery import Clue
from orchestrator.domain.mac import parse_mac
from orchestrator.network.bridge import BridgeNetwork
from orchestrator.ports.devices import DeviceSighting
from orchestrator.ports.discovery import ClueSource
from orchestrator.sim.fleet import FleetSpec, unique_service_type
from orchestrator.sim.kernel import read_drop_counters
from orchestrator.sim.netns import ONBOARDING_BRIDGE
from orchestrator.sim.netns_fleet import NetnsFleet, netns_fleet
from orchestrator.sim.preflight import netns_available
from orchestrator.sim.setns import run_loop_in_namespace
from orchestrator.transport.http import DeviceHttpClient

DEVICE_COUNTS = (10, 50, 200)
SOURCES = ("station", "lease", "mdns", "arp", "all")
RESULTS_DIR = Path(__file__).parent / "results"
WAIT_S = 60.0
LOW_DESCRIPTORS = 64


class Run(msgspec.Struct, frozen=True, kw_only=True):
    """One source against one fleet."""

    devices: int
    source: str
    found: int
    first_s: float | None
    median_s: float | None
    p95_s: float | None
    last_s: float | None
    kernel_drops: dict[str, int]
    valid: bool
    invalid_because: list[str] = msgspec.field(default_factory=list)


class Report(msgspec.Struct, frozen=True, kw_only=True):
    """Every run of one invocation, with the machine it ran on."""

    benchmark: str
    created: datetime
    kernel: str
    cpus: int
    runs: list[Run]


def _pool(fleet: NetnsFleet) -> list[IPv4Address]:
    return address_range(*fleet.bed.dhcp_pool)


def _sources(
    name: str, fleet: NetnsFleet, network: BridgeNetwork, events: Path
) -> list[ClueSource]:
    makers: dict[str, Callable[[], ClueSource]] = {
        "station": lambda: StationSource(network),
        "lease": lambda: LeaseSource(fleet.bed.dhcp.lease_file, events_file=events),
        "mdns": lambda: MdnsSource(
            str(fleet.bed.onboarding_gateway), service_type=fleet.service_type
        ),
        "arp": lambda: ArpSource(ONBOARDING_BRIDGE, _pool(fleet), interval_s=1.0),
    }
    chosen = list(makers) if name == "all" else [name]
    return [makers[n]() for n in chosen]


async def _discover(fleet: NetnsFleet, source: str, events: Path) -> list[float]:
    """In the Pi's namespace: seconds from discovery start to each device's sighting."""
    expected = {parse_mac(d.host.mac) for d in fleet.devices}
    found: dict[str, float] = {}
    async with (
        BridgeNetwork(ONBOARDING_BRIDGE) as network,
        DeviceHttpClient.open(timeout_s=3.0) as client,
    ):
        started = time.perf_counter()
        await network.up()
        if source == "station":
            seen: AsyncIterator[Clue | DeviceSighting] = StationSource(network).clues()
        else:
            discovery = Discovery(_sources(source, fleet, network, events), client)
            seen = discovery.sightings("bench")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(WAIT_S):
                async for item in seen:
                    if item.present and item.mac in expected:
                        found.setdefault(item.mac, time.perf_counter() - started)
                        if len(found) == len(expected):
                            break
        if isinstance(seen, AsyncGenerator):
            await seen.aclose()
    return sorted(found.values())


@contextlib.contextmanager
def _low_descriptors(count: int = LOW_DESCRIPTORS) -> Iterator[Callable[[], None]]:
    """Hold `count` low file descriptors until the returned function releases them.

    This process hosts the whole fleet: at 200 devices it holds over a thousand descriptors,
    and every socket the sources open then gets a number past 1023, which scapy's select()
    (the ARP sweep) refuses. Released just before discovery starts, the held numbers are
    the lowest free ones again, so the sources' sockets get them. The orchestrator itself
    holds a few dozen (measured: 50 during a 1000-device batch).
    """
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(count)]

    def release() -> None:
        while held:
            os.close(held.pop())

    try:
        yield release
    finally:
        release()


async def measure(devices: int, source: str) -> Run:
    """One fleet of `devices`, discovered by `source`."""
    with tempfile.TemporaryDirectory(prefix="bench-discovery-") as work:
        events = Path(work) / "dhcp-events"
        hook = write_hook(Path(work) / "dhcp-hook.sh", events)
        spec = FleetSpec(devices=devices, seed=devices)
        with _low_descriptors() as release:
            async with netns_fleet(
                spec, service_type=unique_service_type(), dhcp_script=hook
            ) as fleet:
                before = read_drop_counters()
                main = functools.partial(_discover, fleet, source, events)
                release()
                times = await run_loop_in_namespace(fleet.bed.pi_namespace, main)
                drops = read_drop_counters().moved_since(before)
    reasons = [f"kernel counter {name} moved by {n}" for name, n in drops.items()]
    if len(times) != devices:
        reasons.append(f"{len(times)} of {devices} devices found within {WAIT_S:.0f} s")
    return Run(
        devices=devices,
        source=source,
        found=len(times),
        first_s=round(times[0], 4) if times else None,
        median_s=round(statistics.median(times), 4) if times else None,
        p95_s=round(times[max(0, int(len(times) * 0.95) - 1)], 4) if times else None,
        last_s=round(times[-1], 4) if times else None,
        kernel_drops=drops,
        valid=not reasons,
        invalid_because=reasons,
    )


async def run_bench(device_counts: Sequence[int], sources: Sequence[str]) -> Report:
    """Each source (and `all`) against a fresh fleet of each size, one fleet at a time."""
    runs = [await measure(n, source) for n in device_counts for source in sources]
    return Report(
        benchmark="discovery",
        created=datetime.now(UTC),
        kernel=platform.release(),
        cpus=os.cpu_count() or 0,
        runs=runs,
    )


def table(report: Report) -> str:
    """The report as a text table."""
    lines = [
        f"{'devices':>7}  {'source':<8}  {'found':>5}  {'first s':>8}  {'median s':>8}  "
        f"{'p95 s':>8}  {'last s':>8}  valid"
    ]
    for r in report.runs:
        cells = [f"{v:>8.3f}" if v is not None else f"{'-':>8}"
                 for v in (r.first_s, r.median_s, r.p95_s, r.last_s)]  # fmt: skip
        verdict = "yes" if r.valid else "INVALID: " + "; ".join(r.invalid_because)
        lines.append(f"{r.devices:>7}  {r.source:<8}  {r.found:>5}  {'  '.join(cells)}  {verdict}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, write the report, print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.discovery", description=__doc__)
    parser.add_argument("--devices", type=int, nargs="+", default=list(DEVICE_COUNTS))
    parser.add_argument("--sources", nargs="+", choices=SOURCES, default=list(SOURCES))
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="report directory")
    args = parser.parse_args(argv)
    if reason := netns_available():
        print(f"bench.discovery: cannot run: {reason}", file=sys.stderr)
        return 2
    report = asyncio.run(run_bench(args.devices, args.sources))
    path = write_report(report, args.out)
    print(table(report))
    print(f"report: {path}", file=sys.stderr)
    return 0 if all(r.valid for r in report.runs) else 1


if __name__ == "__main__":
    sys.exit(main())
