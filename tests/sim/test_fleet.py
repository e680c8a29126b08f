"""The loopback-tier fleet: real HTTP, real mDNS on loopback, a real Mosquitto."""

from __future__ import annotations

import aiomqtt
import httpx
import msgspec

from orchestrator.device.faults import FaultProfile
from orchestrator.device.settings import AgentTiming
from orchestrator.protocol.messages import DeviceInfo
from orchestrator.protocol.status import Online, status_topic
from orchestrator.sim.fleet import FleetSpec, SimulatedDevice, fleet_macs, loopback_fleet
from tests.device.test_mdns import Browser, Seen
from tests.sim.provisioning import credentials, deliver, next_status, nonce, topic_prefix

FAST = AgentTiming(
    join_attempts=3, leave_after_s=0, join_retry_s=0, connect_timeout_s=5, reconnect_s=0,
    reboot_s=0, flap_s=0, stale_gap_s=0, slow_answer_s=0,
)  # fmt: skip
WAIT_S = 10.0


async def info(client: httpx.AsyncClient, device: SimulatedDevice) -> DeviceInfo:
    response = await client.get(f"http://{device.ip}:{device.port}/v1/info")
    assert response.status_code == 200, response.text
    return msgspec.json.decode(response.content, type=DeviceInfo)


def test_macs_and_faults_are_reproducible() -> None:
    assert fleet_macs(50, seed=7) == fleet_macs(50, seed=7)
    assert fleet_macs(50, seed=7) != fleet_macs(50, seed=8)
    assert len(set(fleet_macs(500, seed=1))) == 500


async def test_a_fleet_is_served_advertised_and_provisionable() -> None:
    spec = FleetSpec(devices=12, faults={FaultProfile.WRONG_PASSWORD: 1 / 12}, seed=3)
    async with (
        loopback_fleet(spec, timing=FAST) as fleet,
        Browser.open(fleet.service_type) as browser,
        httpx.AsyncClient(timeout=5) as client,
    ):
        await browser.wait_until(lambda seen: len(seen) == 12, WAIT_S)
        by_mac = {seen.advert.mac: seen for seen in browser.devices.values()}
        assert set(by_mac) == {d.mac for d in fleet.devices}
        for device in fleet.devices:
            assert (by_mac[device.mac].address, by_mac[device.mac].port) == (device.ip, device.port)
            described = await info(client, device)
            assert described.mac == device.mac
            assert described.state == "unprovisioned"

        healthy = next(d for d in fleet.devices if d.agent.fault is FaultProfile.NONE)
        broken = next(d for d in fleet.devices if d.agent.fault is FaultProfile.WRONG_PASSWORD)
        async with aiomqtt.Client(fleet.broker.host, fleet.broker.port) as mqtt:
            await mqtt.subscribe(status_topic(topic_prefix(healthy.mac)), qos=1)
            for device in (healthy, broken):
                body = credentials(fleet.spec, fleet.broker.url, device.mac)
                delivered = await deliver(client, f"{device.ip}:{device.port}", body)
                assert delivered.status_code == 202, delivered.text
            status = await next_status(mqtt)
        assert isinstance(status, Online)
        assert status.nonce == nonce(healthy.mac)
        assert status.mac == healthy.mac

        # The wrong-password device comes back to the onboarding network, failed, and says why.
        def failed(_: dict[str, Seen]) -> bool:
            entry = by_name(browser, broken.mac)
            return entry is not None and entry.advert.state == "failed"

        await browser.wait_until(failed, WAIT_S)
        entry = by_name(browser, broken.mac)
        assert entry is not None
        assert entry.advert.failure == "auth_error"
        described = await info(client, broken)
        assert described.last_failure is not None
        assert described.last_failure.reason == "auth_error"
        assert described.last_failure.attempts == 3


def by_name(browser: Browser, mac: str) -> Seen | None:
    return next((s for s in browser.devices.values() if s.advert.mac == mac), None)
