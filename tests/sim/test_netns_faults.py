"""Every fault profile on the namespace tier: one device per profile in one bed, provisioned
from the Pi's side, observed through the target broker, mDNS and HTTP as the orchestrator
will observe them."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict

import aiomqtt
import httpx
import msgspec
import pytest

from orchestrator.device.faults import FaultProfile
from orchestrator.device.lifecycle import Phase
from orchestrator.protocol.messages import ErrorAnswer
from orchestrator.protocol.status import Online, StatusMessage, decode_status
from orchestrator.sim.fleet import FleetSpec, unique_service_type
from orchestrator.sim.netns_fleet import DEVICE_API_PORT, NetnsDevice, NetnsFleet, netns_fleet
from orchestrator.sim.setns import run_loop_in_namespace
from orchestrator.sim.testbed import Side
from tests.device.test_mdns import Browser, Seen
from tests.sim.provisioning import deliver, nonce
from tests.sim.test_fleet import FAST
from tests.sim.test_netns_fleet import body

pytestmark = pytest.mark.netns
WAIT_S = 20.0
PROFILES = list(FaultProfile)
ONLINE_SEQUENCES = {
    FaultProfile.NONE: ["online"],
    FaultProfile.SLOW: ["online"],
    FaultProfile.LATE: ["offline", "offline", "online"],
    FaultProfile.FLAPS: ["online", "offline", "online"],
    FaultProfile.STALE_RETAINED: ["online", "online"],
}
FAILS_WITH = {
    FaultProfile.WRONG_PASSWORD: "auth_error",
    FaultProfile.NETWORK_NOT_FOUND: "network_not_found",
}


def kind(message: StatusMessage) -> str:
    return "online" if isinstance(message, Online) else "offline"


async def test_every_fault_profile_behaves_as_documented() -> None:
    spec = FleetSpec(devices=len(PROFILES), seed=9)
    async with netns_fleet(
        spec, service_type=unique_service_type(), timing=FAST, profiles=PROFILES
    ) as fleet:
        by_fault = {d.fault: d for d in fleet.devices}
        statuses, answers, adverts = await run_loop_in_namespace(
            fleet.bed.pi_namespace, lambda: observe(fleet)
        )
        never = by_fault[FaultProfile.NEVER_ONLINE]
        # It joined the target side and sits there without a word to the broker.
        assert fleet.bed.side(never.host) is Side.TARGET
        assert never.agent.phase is Phase.CONNECTING

    for profile, sequence in ONLINE_SEQUENCES.items():
        mac = by_fault[profile].host.mac
        assert [kind(m) for m in statuses[mac]] == sequence, profile
        last = statuses[mac][-1]
        assert isinstance(last, Online)
        assert last.nonce == nonce(mac)
    stale = statuses[by_fault[FaultProfile.STALE_RETAINED].host.mac][0]
    assert isinstance(stale, Online)
    assert stale.nonce.startswith("stale-")
    for profile, reason in FAILS_WITH.items():
        seen = adverts[by_fault[profile].host.mac]
        assert (seen.advert.state, seen.advert.failure) == ("failed", reason)
    assert answers[FaultProfile.UNREACHABLE] == "timeout"
    rejected = answers[FaultProfile.REJECTS_CREDENTIALS]
    assert isinstance(rejected, ErrorAnswer)
    assert rejected.error.code == "invalid_request"
    for profile in (*ONLINE_SEQUENCES, *FAILS_WITH, FaultProfile.NEVER_ONLINE):
        assert answers[profile] == 202, profile
    assert not statuses[never.host.mac]


async def observe(
    fleet: NetnsFleet,
) -> tuple[dict[str, list[StatusMessage]], dict[FaultProfile, object], dict[str, Seen]]:
    """From the Pi's namespace: deliver to every device, then watch until each profile has
    shown what it promises."""
    broker = fleet.bed.broker
    statuses: dict[str, list[StatusMessage]] = defaultdict(list)
    answers: dict[FaultProfile, object] = {}
    gateway = str(fleet.bed.onboarding_gateway)
    async with (
        aiomqtt.Client(broker.host, broker.port) as mqtt,
        httpx.AsyncClient(timeout=2) as client,
        Browser.open(fleet.service_type, address=gateway) as browser,
    ):
        await mqtt.subscribe("delicasa/+/status", qos=1)
        answers.update(
            zip(
                [d.fault for d in fleet.devices],
                await asyncio.gather(*(outcome(client, fleet, d) for d in fleet.devices)),
                strict=True,
            )
        )
        wanted = {fleet_device(fleet, p).host.mac: len(seq) for p, seq in ONLINE_SEQUENCES.items()}
        async with asyncio.timeout(WAIT_S):
            async for message in mqtt.messages:
                assert isinstance(message.payload, bytes)
                status = decode_status(message.payload)
                statuses[status.mac].append(status)
                if all(len(statuses[mac]) >= n for mac, n in wanted.items()):
                    break
        failing = {fleet_device(fleet, p).host.mac for p in FAILS_WITH}

        def all_failed(seen: dict[str, Seen]) -> bool:
            states = {s.advert.mac: s.advert.state for s in seen.values()}
            return all(states.get(mac) == "failed" for mac in failing)

        await browser.wait_until(all_failed, WAIT_S)
        adverts = {s.advert.mac: s for s in browser.devices.values()}
    return statuses, answers, adverts


def fleet_device(fleet: NetnsFleet, profile: FaultProfile) -> NetnsDevice:
    return next(d for d in fleet.devices if d.fault is profile)


async def outcome(client: httpx.AsyncClient, fleet: NetnsFleet, device: NetnsDevice) -> object:
    """The HTTP outcome of a delivery: 202, the error answer, or "timeout"."""
    with contextlib.suppress(httpx.TimeoutException):
        answer = await deliver(client, f"{device.ip}:{DEVICE_API_PORT}", body(fleet, device))
        if answer.status_code == 202:
            return 202
        return msgspec.json.decode(answer.content, type=ErrorAnswer)
    return "timeout"
