"""What discovery's sightings and the network's changes do to a session: failures devices
report, `network.status_changed` on every change."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from orchestrator.domain.candidate import CandidateEvent, Failure
from orchestrator.domain.errors import ErrorCode
from orchestrator.domain.mac import parse_mac
from orchestrator.ports.devices import DeviceSighting
from orchestrator.settings import Settings
from orchestrator.streaming.bus import Subscription
from tests.api.conftest import Harness, running
from tests.fakes import FakeNetwork, sighting

A = "02:00:00:00:00:0A"
WAIT_S = 5


@pytest.fixture
async def network_harness(settings: Settings) -> AsyncIterator[tuple[Harness, FakeNetwork]]:
    network = FakeNetwork()
    async with running(settings, network=network) as harness:
        yield harness, network


def reported(reason: str, message: str) -> DeviceSighting:
    """A device back on the onboarding network, reporting why it failed."""
    failure = Failure(reason=reason, message=message, code=ErrorCode.NETWORK_ERROR)
    plain = sighting(A)
    return DeviceSighting(
        mac=plain.mac, ip=plain.ip, rssi=plain.rssi, firmware_version=plain.firmware_version,
        state="failed", failure=failure,
    )  # fmt: skip


async def device(harness: Harness, sid: str) -> dict[str, Any]:
    devices = (await harness.get(f"/batch/{sid}/devices")).json()["data"]["devices"]
    found: dict[str, Any] = next(d for d in devices if d["mac"] == A)
    return found


async def test_a_failure_reported_during_the_attempt_fails_it(harness: Harness) -> None:
    sid = (await harness.start())["id"]
    await harness.devices.feed(sighting(A))
    await harness.post(f"/batch/{sid}/provision-all", {"only_allowlisted": False})
    await harness.devices.feed(reported("auth_error", "the device reports: wrong password"))
    failed = await device(harness, sid)
    assert failed["state"] == "failed"
    assert failed["error_message"] == "the device reports: wrong password"
    retry = await harness.post(f"/batch/{sid}/devices/{A}/retry")
    assert retry.status_code == 403, "not on the allowlist: the retry is refused"


async def test_the_device_reason_replaces_a_timeout(harness: Harness) -> None:
    sid = (await harness.start())["id"]
    await harness.devices.feed(sighting(A))
    await harness.post(f"/batch/{sid}/provision-all", {"only_allowlisted": False})
    timeout = Failure(
        reason="verification_timeout", message="no status within 90s",
        code=ErrorCode.VERIFICATION_TIMEOUT,
    )  # fmt: skip
    await harness.appliance.services.batches.record(sid, parse_mac(A), CandidateEvent.FAIL, timeout)
    await harness.devices.feed(reported("network_not_found", "no 'Factory' in range"))
    assert (await device(harness, sid))["error_message"] == "no 'Factory' in range"


async def test_a_failure_report_of_a_device_at_rest_changes_nothing(harness: Harness) -> None:
    sid = (await harness.start())["id"]
    await harness.devices.feed(sighting(A))
    await harness.devices.feed(reported("auth_error", "an old attempt"))
    assert (await device(harness, sid))["state"] == "discovered"


async def next_network_status(subscription: Subscription) -> dict[str, Any]:
    while True:
        frame = await subscription.next(WAIT_S)
        assert frame is not None, "no network.status_changed in time"
        event: dict[str, Any] = json.loads(frame.data)
        if event["type"] == "network.status_changed":
            payload: dict[str, Any] = event["payload"]
            return payload


async def test_every_network_change_is_an_event(
    network_harness: tuple[Harness, FakeNetwork],
) -> None:
    harness, network = network_harness
    bus = harness.appliance.bus
    subscription, _ = bus.subscribe(None)
    try:
        await harness.start()
        assert await next_network_status(subscription) == {
            "ssid": "DelicasaOnboard", "is_active": True, "connected_devices": 0,
        }  # fmt: skip
        network.associate(A)
        assert (await next_network_status(subscription))["connected_devices"] == 1
        network.disassociate(A)
        assert (await next_network_status(subscription))["connected_devices"] == 0
        status = (await harness.get("/network/status")).json()["data"]
        assert status == {"ssid": "DelicasaOnboard", "is_active": True, "connected_devices": 0}
    finally:
        bus.unsubscribe(subscription)
