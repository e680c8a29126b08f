"""The namespace-tier fleet: devices in their own namespaces with real leases, found over
mDNS from the Pi's side, provisioned over HTTP, online through the target side's broker."""

from __future__ import annotations

import asyncio
import os

import aiomqtt
import httpx
import msgspec
import pytest

from orchestrator.device.faults import FaultProfile
from orchestrator.protocol.messages import DeviceInfo
from orchestrator.protocol.status import Online, status_topic
from orchestrator.sim.fleet import FleetSpec, unique_service_type
from orchestrator.sim.netns_fleet import DEVICE_API_PORT, NetnsDevice, NetnsFleet, netns_fleet
from orchestrator.sim.setns import run_loop_in_namespace
from tests.device.test_mdns import Browser, Seen
from tests.sim.provisioning import credentials, deliver, next_status, nonce, topic_prefix
from tests.sim.test_fleet import FAST

pytestmark = pytest.mark.netns
WAIT_S = 20.0


def body(fleet: NetnsFleet, device: NetnsDevice) -> bytes:
    """Credentials pointing at the bed's broker, on the target side."""
    broker_url = f"mqtt://{fleet.bed.broker.host}:{fleet.bed.broker.port}"
    return credentials(fleet.spec, broker_url, device.host.mac)


async def browse(fleet: NetnsFleet, count: int) -> dict[str, Seen]:
    """Browse from the Pi's namespace, as discovery will."""

    async def main() -> dict[str, Seen]:
        gateway = str(fleet.bed.onboarding_gateway)
        async with Browser.open(fleet.service_type, address=gateway) as b:
            await b.wait_until(lambda seen: len(seen) == count, WAIT_S)
            return {s.advert.mac: s for s in b.devices.values()}

    return await run_loop_in_namespace(fleet.bed.pi_namespace, main)


async def test_a_netns_fleet_is_leased_advertised_provisioned_and_torn_down() -> None:
    spec = FleetSpec(devices=10, faults={FaultProfile.WRONG_PASSWORD: 0.1}, seed=5)
    async with netns_fleet(spec, service_type=unique_service_type(), timing=FAST) as fleet:
        run_id = fleet.bed.run_id
        leases = {lease.mac.upper(): str(lease.ip) for lease in fleet.bed.dhcp.leases()}
        assert {d.host.mac.upper(): d.ip for d in fleet.devices} == leases
        seen = await browse(fleet, 10)
        assert {mac: s.address for mac, s in seen.items()} == {
            d.host.mac: d.ip for d in fleet.devices
        }
        assert all(s.port == DEVICE_API_PORT for s in seen.values())

        healthy = next(d for d in fleet.devices if d.fault is FaultProfile.NONE)
        broken = next(d for d in fleet.devices if d.fault is FaultProfile.WRONG_PASSWORD)

        async def from_the_pi() -> tuple[Online, DeviceInfo]:
            topic = status_topic(topic_prefix(healthy.host.mac))
            broker = fleet.bed.broker
            gateway = str(fleet.bed.onboarding_gateway)
            async with (
                aiomqtt.Client(broker.host, broker.port) as mqtt,
                httpx.AsyncClient(timeout=5) as client,
                Browser.open(fleet.service_type, address=gateway) as browser,
            ):
                await mqtt.subscribe(topic, qos=1)
                for device in (healthy, broken):
                    answer = await deliver(
                        client, f"{device.ip}:{DEVICE_API_PORT}", body(fleet, device)
                    )
                    assert answer.status_code == 202, answer.text
                online = await next_status(mqtt)
                assert isinstance(online, Online)

                # The failed device comes back to the onboarding side and says so over mDNS.
                def came_back_failed(seen: dict[str, Seen]) -> bool:
                    return any(
                        s.advert.mac == broken.host.mac and s.advert.state == "failed"
                        for s in seen.values()
                    )

                await browser.wait_until(came_back_failed, WAIT_S)
                answer = await client.get(f"http://{broken.ip}:{DEVICE_API_PORT}/v1/info")
                return online, msgspec.json.decode(answer.content, type=DeviceInfo)

        online, failed = await run_loop_in_namespace(fleet.bed.pi_namespace, from_the_pi)
        assert online.nonce == nonce(healthy.host.mac)
        assert online.ip == str(healthy.host.target_ip)
        assert failed.last_failure is not None
        assert failed.last_failure.reason == "auth_error"
    names = await asyncio.to_thread(os.listdir, "/run/netns")
    assert not [name for name in names if run_id in name]
