"""The namespace test bed: real DHCP leases, isolation of the onboarding side, switching
networks with a real MQTT CONNECT, and nothing left behind."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from ipaddress import IPv4Interface
from pathlib import Path

import aiomqtt
import pytest

from orchestrator.sim.kernel import current_limits, live_run_ids, read_sysctl, wanted_limits
from orchestrator.sim.netns import ONBOARDING_NET, TARGET_NET, bed_namespaces, interface_addresses
from orchestrator.sim.process import run_command
from orchestrator.sim.setns import connect_in_namespace, run_loop_in_namespace
from orchestrator.sim.testbed import DeviceHost, Side, TestBed, remove_crashed_beds
from tests.sim.conftest import BedFactory

pytestmark = pytest.mark.netns

CONNECT_TIMEOUT_S = 2.0


async def _assert_onboarding_address(bed: TestBed, device: DeviceHost) -> None:
    addresses = await interface_addresses(device.namespace)
    onboarding = IPv4Interface(f"{device.onboarding_ip}/{ONBOARDING_NET.prefixlen}")
    assert addresses[device.onboarding_interface] == [onboarding]
    assert addresses[device.target_interface] == []


async def _assert_broker_unreachable(bed: TestBed, device: DeviceHost) -> None:
    with pytest.raises(OSError, match="unreachable"):
        await connect_in_namespace(
            device.namespace, bed.broker.host, bed.broker.port, timeout_s=CONNECT_TIMEOUT_S
        )


async def _mqtt_round_trip(host: str, port: int, client_id: str) -> bytes:
    async with (
        asyncio.timeout(10),
        aiomqtt.Client(host, port, identifier=client_id, max_queued_incoming_messages=10) as c,
    ):
        await c.subscribe(f"bed/{client_id}")
        await c.publish(f"bed/{client_id}", b"online")
        async for message in c.messages:
            return bytes(message.payload)
    raise AssertionError("no message")


async def _host_links() -> set[str]:
    out = await run_command(["ip", "-o", "link"])
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


async def _listed_namespaces() -> str:
    return await run_command(["ip", "netns", "list"])


def _children() -> list[int]:
    return [
        int(pid)
        for task in Path("/proc/self/task").iterdir()
        for pid in (task / "children").read_text().split()
    ]


async def test_every_device_holds_a_distinct_lease(netns_bed: TestBed) -> None:
    leases = {lease.mac: lease for lease in netns_bed.dhcp.leases()}
    assert len(netns_bed.devices) == 10
    assert len({d.onboarding_ip for d in netns_bed.devices}) == 10
    for device in netns_bed.devices:
        assert leases[device.mac].ip == device.onboarding_ip
        assert leases[device.mac].hostname == device.hostname
        assert device.onboarding_ip in ONBOARDING_NET
        assert netns_bed.side(device) is Side.ONBOARDING
        await _assert_onboarding_address(netns_bed, device)


async def test_onboarding_side_cannot_reach_the_broker(netns_bed: TestBed) -> None:
    # The broker is up: the Pi, which has an uplink, reaches it.
    _, writer = await connect_in_namespace(
        netns_bed.pi_namespace, netns_bed.broker.host, netns_bed.broker.port
    )
    writer.close()
    await writer.wait_closed()
    for device in netns_bed.devices:
        await _assert_broker_unreachable(netns_bed, device)


async def test_a_switched_device_connects_to_mosquitto_and_can_switch_back(
    netns_bed: TestBed,
) -> None:
    device = netns_bed.devices[3]
    await netns_bed.switch_to_target(device)
    assert netns_bed.side(device) is Side.TARGET
    addresses = await interface_addresses(device.namespace)
    assert addresses[device.target_interface] == [
        IPv4Interface(f"{device.target_ip}/{TARGET_NET.prefixlen}")
    ]
    assert addresses[device.onboarding_interface] == []

    payload = await run_loop_in_namespace(
        device.namespace,
        lambda: _mqtt_round_trip(netns_bed.broker.host, netns_bed.broker.port, device.hostname),
    )
    assert payload == b"online"

    back = await netns_bed.switch_to_onboarding(device)
    assert netns_bed.side(back) is Side.ONBOARDING
    assert back.onboarding_ip == device.onboarding_ip  # dnsmasq keeps a MAC's address
    assert netns_bed.devices[3] == back
    await _assert_onboarding_address(netns_bed, back)
    await _assert_broker_unreachable(netns_bed, back)


async def test_kernel_limits_are_raised_and_restored(make_bed: BedFactory) -> None:
    others = live_run_ids()
    before = current_limits()
    async with make_bed(devices=5) as bed:
        for key, wanted in wanted_limits(5).items():
            assert read_sysctl(key) >= wanted
            assert bed.kernel_limits[key] == read_sysctl(key)
    if others or live_run_ids():
        pytest.skip("another process's bed holds the limits raised")
    assert current_limits() == before


CRASHING_RUN = """
import asyncio
from orchestrator.sim.testbed import TestBed

async def main():
    async with TestBed.build(devices=2) as bed:
        print(bed.run_id, flush=True)
        await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_the_next_run_cleans_up_after_a_crashed_one(
    make_bed: BedFactory, tmp_path: Path
) -> None:
    others = live_run_ids()
    before = current_limits()
    crashing = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CRASHING_RUN,
        stdout=asyncio.subprocess.PIPE,
        # The broker's work directory has no run id; keep it where pytest cleans up.
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert crashing.stdout is not None
    try:
        async with asyncio.timeout(30):
            run_id = (await crashing.stdout.readline()).decode().strip()
    finally:
        crashing.kill()  # no teardown at all, as with kill -9
        await crashing.wait()
    assert len(bed_namespaces()[run_id]) == 4  # pi, broker, 2 devices
    removed = await remove_crashed_beds()
    assert len([name for name in removed if run_id in name]) == 4
    assert run_id not in bed_namespaces()
    if not others and not live_run_ids():
        assert current_limits() == before


async def test_nothing_is_left_behind(make_bed: BedFactory) -> None:
    links = await _host_links()
    async with make_bed(devices=10) as bed:
        assert (await _listed_namespaces()).count(bed.run_id) == 12  # pi, broker, 10 devices
        assert _children()  # dnsmasq and mosquitto
    assert bed.leftovers() == []
    assert bed.run_id not in await _listed_namespaces()
    ours = re.compile(r"^(br-onb|br-tgt|t-mq|onb0|tgt0|[ot]\d+)$")
    assert not [link for link in await _host_links() - links if ours.match(link)]
    assert _children() == []


async def test_nothing_is_left_behind_when_the_block_raises(make_bed: BedFactory) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with make_bed(devices=3) as bed:
            raise RuntimeError("boom")
    assert bed.leftovers() == []
    assert _children() == []


async def test_dnsmasq_calls_the_dhcp_script(make_bed: BedFactory, tmp_path: Path) -> None:
    events = tmp_path / "events"
    script = tmp_path / "hook.sh"
    script.write_text(f'#!/bin/sh\necho "$1 $2 $3" >> {events}\n')
    script.chmod(0o700)
    async with make_bed(devices=3, dhcp_script=script) as bed:
        expected = {f"add {d.mac} {d.onboarding_ip}" for d in bed.devices}
        async with asyncio.timeout(5):
            # dnsmasq runs the hook from a helper process; its file is the only signal.
            while not events.exists() or set(events.read_text().splitlines()) != expected:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    assert bed.leftovers() == []


@pytest.mark.parametrize("netns_bed", [50], indirect=True)
async def test_fifty_devices_are_all_leased(netns_bed: TestBed) -> None:
    leases = netns_bed.dhcp.leases()
    assert len({lease.ip for lease in leases}) == 50
    assert {lease.mac for lease in leases} == {d.mac for d in netns_bed.devices}
