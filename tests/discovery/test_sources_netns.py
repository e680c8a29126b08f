"""Every discovery source, and the bridge backend, against a fleet of 50 simulated devices in
namespaces of their own, run from the Pi's namespace as the orchestrator would.

Each source alone finds every device (with its lease address where it knows one); departures
are noticed by the bridge (the device's port goes down) and by ARP (missed sweeps); the DHCP
hook reports a release and a new lease; with mDNS blocked on the onboarding network, mDNS
finds nothing while ARP still finds everyone, and everything once it is unblocked.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from orchestrator.discovery.arp import ArpSource, address_range
from orchestrator.discovery.leases import LeaseSource, write_hook
from orchestrator.discovery.mdns import MdnsSource
from orchestrator.domain.mac import Mac, parse_mac
from orchestrator.network.bridge import BridgeNetwork
from orchestrator.sim.blocking import block_mdns
from orchestrator.sim.fleet import FleetSpec, unique_service_type
from orchestrator.sim.netns import ONBOARDING_BRIDGE
from orchestrator.sim.netns_fleet import NetnsFleet
from orchestrator.sim.process import in_namespace, stop
from orchestrator.sim.testbed import DeviceHost
from tests.discovery.netns import (
    Collected,
    RemoteNetwork,
    network_in_namespace,
    running_in_namespace,
)
from tests.sim.conftest import make_netns_fleet
from tests.sim.test_fleet import FAST

__all__ = ["make_netns_fleet"]  # the fixture, imported for its use here

pytestmark = pytest.mark.netns
DEVICES = 50
EVENTS = "dhcp-events"


@pytest.fixture
async def fleet(
    make_netns_fleet: Callable[..., AbstractAsyncContextManager[NetnsFleet]], tmp_path: Path
) -> AsyncIterator[NetnsFleet]:
    """50 devices leased by a dnsmasq that reports to the DHCP hook (events in tmp_path)."""
    hook = write_hook(tmp_path / "dhcp-hook.sh", tmp_path / EVENTS)
    build = make_netns_fleet(
        FleetSpec(devices=DEVICES, seed=3),
        service_type=unique_service_type(),
        timing=FAST,
        dhcp_script=hook,
    )
    async with build as fleet:
        yield fleet


def leased(fleet: NetnsFleet) -> dict[Mac, str | None]:
    """Every device's MAC with its lease address."""
    return {parse_mac(d.host.mac): d.ip for d in fleet.devices}


def everyone(seen: Collected, fleet: NetnsFleet) -> bool:
    return seen.present() == leased(fleet)


def dhcp_pool(fleet: NetnsFleet) -> list[IPv4Address]:
    """Every address of the bed's dnsmasq pool."""
    return address_range(*fleet.bed.dhcp_pool)


def mdns(fleet: NetnsFleet, **options: float) -> Callable[[], MdnsSource]:
    gateway = str(fleet.bed.onboarding_gateway)
    return lambda: MdnsSource(gateway, service_type=fleet.service_type, **options)


def arp(fleet: NetnsFleet) -> Callable[[], ArpSource]:
    pool = dhcp_pool(fleet)
    return lambda: ArpSource(ONBOARDING_BRIDGE, pool, interval_s=0.2, timeout_s=0.5)


async def release(host: DeviceHost) -> None:
    """The device leases its address once more, then releases it (udhcpc -R, on SIGTERM)."""
    process = await asyncio.create_subprocess_exec(
        *in_namespace(host.namespace), "busybox", "udhcpc", "-f", "-R", "-n",
        "-i", host.onboarding_interface, "-t", "5", "-T", "1", "-s", "/bin/true",
        "-x", f"hostname:{host.hostname}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        async with asyncio.timeout(10):
            while b"obtained" not in (line := await process.stdout.readline()):
                assert line, "udhcpc ended without a lease"
            process.terminate()
            out, _ = await process.communicate()
        assert b"sending release" in out
    finally:
        await stop(process)


def gone(mac: Mac) -> Callable[[Collected], bool]:
    return lambda seen: mac in seen.latest() and not seen.latest()[mac].present


async def test_leases_find_every_device_and_the_hook_reports_each_change(
    fleet: NetnsFleet, tmp_path: Path
) -> None:
    bed, events = fleet.bed, tmp_path / EVENTS
    host = bed.devices[7]
    mac = parse_mac(host.mac)
    async with (
        running_in_namespace(
            bed.pi_namespace, lambda: LeaseSource(bed.dhcp.lease_file, events_file=events)
        ) as leases,
        # The hook alone: a lease file that does not exist.
        running_in_namespace(
            bed.pi_namespace, lambda: LeaseSource(tmp_path / "none.leases", events_file=events)
        ) as hook,
    ):
        await leases.wait_until(lambda seen: everyone(seen, fleet))

        await release(host)
        await hook.wait_until(gone(mac))
        await leases.wait_until(gone(mac))

        again = await bed.switch_to_onboarding(host)
        await hook.wait_until(lambda seen: seen.present() == {mac: str(again.onboarding_ip)})
        await leases.wait_until(lambda seen: seen.latest()[mac].present)
    assert [(c.present, c.ip) for c in hook.clues[-2:]] == [
        (False, str(host.onboarding_ip)),
        (True, str(again.onboarding_ip)),
    ]


async def test_mdns_finds_every_device_with_its_state(fleet: NetnsFleet) -> None:
    async with running_in_namespace(fleet.bed.pi_namespace, mdns(fleet)) as seen:
        await seen.wait_until(lambda seen: everyone(seen, fleet))
    assert {clue.state for clue in seen.latest().values()} == {"unprovisioned"}


async def test_arp_finds_every_device_and_notices_one_leaving(
    fleet: NetnsFleet, capfd: pytest.CaptureFixture[str]
) -> None:
    bed = fleet.bed
    host = bed.devices[11]
    async with running_in_namespace(bed.pi_namespace, arp(fleet)) as seen:
        await seen.wait_until(lambda seen: everyone(seen, fleet))
        await bed.switch_to_target(host)
        await seen.wait_until(gone(parse_mac(host.mac)))
    assert len(seen.present()) == DEVICES - 1
    assert capfd.readouterr() == ("", "")  # scapy printed nothing


async def test_the_bridge_lists_every_station_and_notices_one_leaving(fleet: NetnsFleet) -> None:
    bed = fleet.bed
    host = bed.devices[23]
    stations = set(leased(fleet))

    def listing(expected: set[Mac]) -> Callable[[RemoteNetwork], bool]:
        return lambda net: set(net.stations) == expected

    async with network_in_namespace(
        bed.pi_namespace, lambda: BridgeNetwork(ONBOARDING_BRIDGE)
    ) as net:
        await net.wait_until(listing(stations))
        assert net.status is not None
        assert net.status.connected_devices == DEVICES
        await bed.switch_to_target(host)
        await net.wait_until(listing(stations - {parse_mac(host.mac)}))
        assert net.status.connected_devices == DEVICES - 1


async def test_with_mdns_blocked_mdns_finds_nothing_and_arp_finds_everyone(
    fleet: NetnsFleet,
) -> None:
    pi = fleet.bed.pi_namespace
    async with contextlib.AsyncExitStack() as blocking:
        await blocking.enter_async_context(block_mdns(fleet.bed))
        async with running_in_namespace(pi, mdns(fleet, requery_interval_s=0.5)) as adverts:
            async with running_in_namespace(pi, arp(fleet)) as sweeps:
                # A sweep waits 0.5 s for answers; unblocked, mDNS finds 50 in under 0.2 s.
                await sweeps.wait_until(lambda seen: everyone(seen, fleet))
            assert adverts.clues == []
            await blocking.aclose()  # unblocked: the same source finds them on its next query
            await adverts.wait_until(lambda seen: everyone(seen, fleet))
