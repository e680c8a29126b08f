"""The test bed's bridge backend: fdb listings and monitor lines read, the station table kept,
and (on a small bed) a real bridge followed through a device leaving and coming back, its
monitor dying, and the network going down and up."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable

import pytest

from orchestrator.domain.errors import OrchestratorError
from orchestrator.domain.mac import Mac, parse_mac
from orchestrator.domain.network import NetworkStatus, Station
from orchestrator.network.bridge import (
    BridgeNetwork,
    FdbEntry,
    StationTable,
    is_unicast,
    parse_fdb_json,
    parse_monitor_line,
)
from orchestrator.sim.netns import ONBOARDING_BRIDGE
from orchestrator.sim.process import run_command
from orchestrator.sim.setns import run_loop_in_namespace
from orchestrator.sim.testbed import TestBed
from tests.discovery.netns import RemoteNetwork, macs, network_in_namespace
from tests.sim.conftest import BedFactory, make_bed, netns_bed

__all__ = ["make_bed", "netns_bed"]  # fixtures, imported for their use here

DEVICE = "02:ca:f3:ba:00:00"
PORT_MAC = "5a:ee:0b:d5:4e:71"
# Captured from `bridge -j fdb show br br-onb` on a bed (trimmed).
FDB_JSON = json.dumps(
    [
        {"mac": "33:33:00:00:00:01", "ifname": "br-onb", "flags": ["self"], "state": "permanent"},
        {"mac": DEVICE, "ifname": "o0", "flags": [], "master": "br-onb", "state": ""},
        {"mac": PORT_MAC, "ifname": "o0", "flags": [], "master": "br-onb", "state": "permanent"},
        {"mac": "01:00:5e:00:00:01", "ifname": "o0", "flags": ["self"], "state": "permanent"},
        {"mac": "02:ca:f3:ba:00:01", "ifname": "t1", "flags": [], "master": "br-tgt", "state": ""},
    ]
)


def test_an_fdb_listing_is_read() -> None:
    assert parse_fdb_json(FDB_JSON)[:3] == [
        FdbEntry(mac="33:33:00:00:00:01", ifname="br-onb", master=None, learned=False),
        FdbEntry(mac=DEVICE, ifname="o0", master="br-onb", learned=True),
        FdbEntry(mac=PORT_MAC, ifname="o0", master="br-onb", learned=False),
    ]
    assert parse_fdb_json("") == []


def test_monitor_lines_are_read() -> None:
    assert parse_monitor_line(f"{DEVICE} dev o0 master br-onb \n") == (
        FdbEntry(mac=DEVICE, ifname="o0", master="br-onb", learned=True),
        False,
    )
    assert parse_monitor_line(f"Deleted {DEVICE} dev o0 vlan 1 master br-onb stale") == (
        FdbEntry(mac=DEVICE, ifname="o0", master="br-onb", learned=True),
        True,
    )
    assert parse_monitor_line(f"{PORT_MAC} dev o3 master br-onb permanent") == (
        FdbEntry(mac=PORT_MAC, ifname="o3", master="br-onb", learned=False),
        False,
    )
    assert parse_monitor_line("33:33:00:00:00:01 dev o3 self permanent") == (
        FdbEntry(mac="33:33:00:00:00:01", ifname="o3", master=None, learned=False),
        False,
    )
    assert parse_monitor_line("") is None
    assert parse_monitor_line("Deleted") is None
    assert parse_monitor_line("something else entirely") is None


def test_group_addresses_are_not_stations() -> None:
    assert is_unicast(DEVICE)
    assert not is_unicast("01:00:5e:00:00:fb")
    assert not is_unicast("33:33:00:00:00:01")
    assert not is_unicast("ff:ff:ff:ff:ff:ff")


def test_the_table_holds_learned_unicast_macs_of_its_own_bridge_only() -> None:
    table = StationTable("br-onb")
    assert table.load(parse_fdb_json(FDB_JSON))
    assert table.stations == {parse_mac(DEVICE): Station(mac=parse_mac(DEVICE))}
    assert not table.load(parse_fdb_json(FDB_JSON))


def test_the_table_follows_additions_and_deletions() -> None:
    table = StationTable("br-onb")
    learned = FdbEntry(mac=DEVICE, ifname="o0", master="br-onb", learned=True)
    assert table.apply(learned, deleted=False)
    assert not table.apply(learned, deleted=False)  # refreshed, or moved to another port
    assert table.apply(learned, deleted=True)
    assert not table.apply(learned, deleted=True)
    assert table.stations == {}


def test_the_bridge_and_its_ports_are_never_stations() -> None:
    table = StationTable("br-onb")
    table.own(["aa:aa:aa:aa:aa:aa", ""])
    assert not table.apply(FdbEntry("aa:aa:aa:aa:aa:aa", "o0", "br-onb", True), deleted=False)
    # A port added later announces its own MAC as permanent first.
    port = FdbEntry(mac=PORT_MAC, ifname="o9", master="br-onb", learned=False)
    assert not table.apply(port, deleted=False)
    assert not table.apply(FdbEntry(PORT_MAC, "o9", "br-onb", True), deleted=False)
    assert table.stations == {}


# -- a real bridge ---------------------------------------------------------------------------


def monitors(bed: TestBed) -> list[int]:
    """The `bridge monitor` processes in the bed's namespaces."""
    return [
        int(found.split()[1].rstrip(":"))
        for found in bed.leftovers()
        if found.startswith("process") and "bridge monitor fdb" in found
    ]


async def link_is_up(bed: TestBed) -> bool:
    out = await run_command(["ip", "-j", "-n", bed.pi_namespace, "link", "show", ONBOARDING_BRIDGE])
    return "UP" in json.loads(out)[0]["flags"]


@pytest.mark.netns
@pytest.mark.parametrize("netns_bed", [3], indirect=True)
async def test_a_real_bridge_is_followed(netns_bed: TestBed) -> None:
    bed = netns_bed
    everyone = macs(d.mac for d in bed.devices)
    leaving = bed.devices[1]

    def stations_are(expected: set[Mac]) -> Callable[[RemoteNetwork], bool]:
        return lambda net: set(net.stations) == expected

    async with network_in_namespace(
        bed.pi_namespace, lambda: BridgeNetwork(ONBOARDING_BRIDGE, ssid="Onboard")
    ) as net:
        await net.wait_until(stations_are(everyone))
        assert net.status == NetworkStatus(ssid="Onboard", is_active=True, connected_devices=3)
        assert all(station.rssi is None for station in net.stations.values())
        assert await link_is_up(bed)

        await bed.switch_to_target(leaving)
        await net.wait_until(stations_are(everyone - macs([leaving.mac])))
        await bed.switch_to_onboarding(leaving)  # its DHCP traffic is learned again
        await net.wait_until(stations_are(everyone))

        # The monitor dies: it is restarted and the table listed again.
        (pid,) = monitors(bed)
        os.kill(pid, signal.SIGKILL)
        await bed.switch_to_target(leaving)
        await net.wait_until(stations_are(everyone - macs([leaving.mac])))
        assert monitors(bed) != [pid]

        await net.call(lambda network: network.down())
        await net.wait_until(lambda net: net.status is not None and not net.status.is_active)
        assert net.stations == {}
        assert not await link_is_up(bed)
        assert monitors(bed) == []
        await net.call(lambda network: network.up())
        await net.wait_until(lambda net: net.status is not None and net.status.is_active)
        assert await link_is_up(bed)
        assert len(monitors(bed)) == 1
    assert monitors(bed) == []


@pytest.mark.netns
@pytest.mark.parametrize("netns_bed", [1], indirect=True)
async def test_a_missing_bridge_fails_to_come_up_and_leaves_nothing(netns_bed: TestBed) -> None:
    async def main() -> str:
        async with BridgeNetwork("br-nosuch") as network:
            with pytest.raises(OrchestratorError) as caught:
                await network.up()
            assert network.status().is_active is False
            return str(caught.value.details)

    details = await run_loop_in_namespace(netns_bed.pi_namespace, main)
    assert "br-nosuch" in details
    assert monitors(netns_bed) == []


@pytest.mark.netns
async def test_down_right_after_up_leaves_no_monitor_behind(make_bed: BedFactory) -> None:
    async def cycle() -> None:
        network = BridgeNetwork(ONBOARDING_BRIDGE)
        await network.up()
        await network.down()  # before the monitor's task ever ran

    async with make_bed(devices=1) as bed:
        await run_loop_in_namespace(bed.pi_namespace, cycle)
        assert [p for p in bed.leftovers() if "bridge monitor" in p] == []
