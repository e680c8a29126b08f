"""The simulated world of networks, and the MQTT link's address helpers."""

from __future__ import annotations

import pytest

from orchestrator.device.errors import BrokerUnreachableError, JoinError
from orchestrator.device.mqtt import broker_address, client_id
from orchestrator.device.network import (
    ONBOARDING_SSID,
    Attachment,
    NetworkSwitch,
    SimulatedNetworks,
    TargetNetwork,
)
from orchestrator.protocol.messages import FailureReason

A, B, C = "02:00:00:00:00:0A", "02:00:00:00:00:0B", "02:00:00:00:00:0C"


def world() -> SimulatedNetworks:
    return SimulatedNetworks(
        [
            TargetNetwork(ssid="Plant", password="pw-plant", broker=("127.0.0.1", 1884)),
            TargetNetwork(ssid="Tiny", password="pw-tiny", subnet="10.9.0.0/30"),
        ]
    )


async def test_a_switch_moves_a_device_between_networks() -> None:
    sim = world()
    switch: NetworkSwitch = sim.switch(A)
    assert sim.location(A) == ONBOARDING_SSID
    await switch.leave_onboarding()
    assert sim.location(A) is None
    joined = await switch.join_target("Plant", "pw-plant")
    assert joined == Attachment(ssid="Plant", ip="10.42.0.1", broker=("127.0.0.1", 1884))
    assert sim.location(A) == "Plant"
    await switch.return_to_onboarding()
    assert sim.location(A) == ONBOARDING_SSID
    assert sim.location(B) is None  # never seen


@pytest.mark.parametrize(
    ("ssid", "password", "reason"),
    [
        ("Plant", "pw-wrong", FailureReason.AUTH_ERROR),
        ("Elsewhere", "pw-plant", FailureReason.NETWORK_NOT_FOUND),
    ],
)
async def test_joins_fail_with_the_reason_a_radio_would_see(
    ssid: str, password: str, reason: FailureReason
) -> None:
    sim = world()
    switch = sim.switch(A)
    await switch.leave_onboarding()
    with pytest.raises(JoinError) as caught:
        await switch.join_target(ssid, password)
    assert caught.value.reason is reason
    assert sim.location(A) is None


async def test_leases_are_stable_per_device_and_run_out() -> None:
    sim = world()
    first = await sim.switch(A).join_target("Tiny", "pw-tiny")
    second = await sim.switch(B).join_target("Tiny", "pw-tiny")
    again = await sim.switch(A).join_target("Tiny", "pw-tiny")
    assert (first.ip, second.ip, again.ip) == ("10.9.0.1", "10.9.0.2", "10.9.0.1")
    assert first.broker is None
    with pytest.raises(JoinError) as caught:
        await sim.switch(C).join_target("Tiny", "pw-tiny")
    assert caught.value.reason is FailureReason.DHCP_FAILED


def test_broker_addresses_and_client_ids() -> None:
    assert broker_address("mqtt://10.0.0.5:1999") == ("10.0.0.5", 1999)
    assert broker_address("mqtt://broker.lan") == ("broker.lan", 1883)
    assert broker_address("mqtts://broker.lan") == ("broker.lan", 8883)
    with pytest.raises(BrokerUnreachableError):
        broker_address("http://broker.lan")
    assert client_id("02:00:00:00:00:0A") == "dev-02000000000a"
