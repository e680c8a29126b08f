"""The agent against a real private Mosquitto: going online, the last will, failures, and
every fault profile that shows on the target network."""

from __future__ import annotations

import asyncio

import aiomqtt
import msgspec
import pytest

from orchestrator.device.errors import RequestError
from orchestrator.device.faults import FaultProfile
from orchestrator.device.lifecycle import Phase
from orchestrator.device.mqtt import client_id
from orchestrator.protocol.messages import CREDENTIALS_PATH, DeviceState, FailureReason
from orchestrator.protocol.status import (
    Offline,
    Online,
    decode_status,
    encode_status,
    status_topic,
)
from orchestrator.sim.broker import free_port
from tests.device.bench import NONCE, SSID, WAIT_S, Device, bench, watch_status

PATH_ONLINE = [Phase.ACCEPTED, Phase.JOINING, Phase.CONNECTING, Phase.ONLINE]
PATH_FAILED = [Phase.ACCEPTED, Phase.JOINING, Phase.FAILED]


def online(device: Device, nonce: str = NONCE, ip: str = "10.42.0.1") -> Online:
    return Online(nonce=nonce, mac=device.mac, ip=ip, firmware_version="2.4.1", device_name="cam-1")


async def test_happy_path_publishes_online_with_nonce_mac_ip_and_firmware() -> None:
    async with bench() as bed, watch_status(bed.broker, "fleet/dev1") as status:
        device = bed.device()
        sent = bed.credentials()
        response = await bed.http.post(
            device.url + CREDENTIALS_PATH, json=msgspec.to_builtins(sent)
        )
        assert response.status_code == 202
        seen = await status.next()
        await device.until(Phase.ONLINE)
        async with watch_status(bed.broker, "fleet/dev1") as late:
            retained = await late.next()
        assert bed.world.location(device.mac) == SSID
    assert seen.message == online(device)
    assert retained.retained
    assert retained.message == online(device)
    assert device.phases == PATH_ONLINE
    assert 0.2 in bed.sleeps.calls  # left only after the answer had time to get out


async def test_the_will_says_offline_when_the_connection_drops_and_the_device_comes_back() -> None:
    async with bench() as bed, watch_status(bed.broker, "fleet/dev1") as status:
        device = bed.device()
        await device.agent.deliver(bed.credentials())
        assert (await status.next()).message == online(device)
        # Another connection under the device's client id makes the broker drop the
        # device's own as gone, without a DISCONNECT: the will fires.
        async with aiomqtt.Client(
            bed.broker.host, bed.broker.port, identifier=client_id(device.mac), timeout=WAIT_S
        ):
            pass
        dropped, back = await status.take(2)
        await device.until(Phase.ONLINE)
    assert dropped.message == Offline(mac=device.mac)
    assert back.message == online(device)
    assert device.phases == [*PATH_ONLINE, Phase.CONNECTING, Phase.ONLINE]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"target_password": "wrong-password"}, FailureReason.AUTH_ERROR),
        ({"target_ssid": "Nowhere"}, FailureReason.NETWORK_NOT_FOUND),
    ],
)
async def test_a_failed_join_comes_back_failed_with_the_reason_after_three_attempts(
    changes: dict[str, str], reason: FailureReason
) -> None:
    async with bench() as bed:
        device = bed.device()
        await device.agent.deliver(bed.credentials(1, **changes))
        await device.until(Phase.FAILED)
        info = device.agent.info()
        assert bed.world.location(device.mac) == bed.world.onboarding_ssid
    assert info.state is DeviceState.FAILED
    assert info.last_failure is not None
    assert info.last_failure.reason is reason
    assert info.last_failure.attempts == 3
    assert device.phases == PATH_FAILED
    assert bed.sleeps.calls.count(2.0) == 2  # join_retry_s between the three attempts


async def test_a_failed_device_accepts_new_credentials_and_then_succeeds() -> None:
    async with bench() as bed, watch_status(bed.broker, "fleet/dev1") as status:
        device = bed.device()
        await device.agent.deliver(bed.credentials(target_password="wrong-password"))
        await device.until(Phase.FAILED)
        retry = bed.credentials(nonce="nonce-retry-000000000")
        receipt = await device.agent.deliver(retry)
        seen = await status.next()
        await device.until(Phase.ONLINE)
    assert receipt.state is DeviceState.PROVISIONED
    assert seen.message == online(device, nonce="nonce-retry-000000000")
    assert device.phases == [*PATH_FAILED, *PATH_ONLINE]


async def test_an_unreachable_broker_comes_back_failed_with_broker_unreachable() -> None:
    async with bench() as bed:
        device = bed.device()
        await device.agent.deliver(bed.credentials(broker_url=f"mqtt://127.0.0.1:{free_port()}"))
        await device.until(Phase.FAILED)
    failure = device.agent.last_failure
    assert failure is not None
    assert failure.reason is FailureReason.BROKER_UNREACHABLE
    assert failure.attempts == 3
    assert device.phases == [Phase.ACCEPTED, Phase.JOINING, Phase.CONNECTING, Phase.FAILED]


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (FaultProfile.WRONG_PASSWORD, FailureReason.AUTH_ERROR),
        (FaultProfile.NETWORK_NOT_FOUND, FailureReason.NETWORK_NOT_FOUND),
    ],
)
async def test_fault_join_failures_even_with_the_right_credentials(
    fault: FaultProfile, reason: FailureReason
) -> None:
    async with bench() as bed:
        device = bed.device(fault=fault)
        await device.agent.deliver(bed.credentials())
        await device.until(Phase.FAILED)
        again = await device.agent.deliver(bed.credentials())
        await device.until(Phase.FAILED)
    failure = device.agent.last_failure
    assert failure is not None
    assert (failure.reason, failure.attempts) == (reason, 3)
    assert again.state is DeviceState.PROVISIONED  # a failed device takes credentials again
    assert device.phases == PATH_FAILED * 2


async def test_fault_never_online_leaves_and_is_never_heard_of_again() -> None:
    async with bench() as bed, watch_status(bed.broker, "fleet/dev1") as status:
        device = bed.device(fault=FaultProfile.NEVER_ONLINE)
        await device.agent.deliver(bed.credentials())
        await device.until(Phase.CONNECTING)
        # The device's work is done; had it published, that would arrive before this marker.
        async with aiomqtt.Client(bed.broker.host, bed.broker.port) as marker:
            await marker.publish(status_topic("fleet/dev1"), encode_status(Offline(mac="m")), 1)
        first = await status.next()
        with pytest.raises(RequestError, match="other credentials"):
            await device.agent.deliver(bed.credentials(nonce="nonce-other-000000000"))
        assert bed.world.location(device.mac) == SSID
    assert first.message == Offline(mac="m")
    assert device.phases == [Phase.ACCEPTED, Phase.JOINING, Phase.CONNECTING]


async def test_fault_late_reboots_twice_before_it_comes_online() -> None:
    async with bench() as bed, watch_status(bed.broker, "fleet/dev1") as status:
        device = bed.device(fault=FaultProfile.LATE)
        await device.agent.deliver(bed.credentials())
        seen = [r.message for r in await status.take(3)]
        await device.until(Phase.ONLINE)
    assert seen == [Offline(mac=device.mac), Offline(mac=device.mac), online(device)]
    assert bed.sleeps.calls.count(3.0) == 2  # reboot_s, twice
    assert device.phases == PATH_ONLINE


async def test_fault_flaps_goes_online_offline_and_online_again() -> None:
    async with bench() as bed, watch_status(bed.broker, "fleet/dev1") as status:
        device = bed.device(fault=FaultProfile.FLAPS, flap_s=4.5)
        await device.agent.deliver(bed.credentials())
        seen = [r.message for r in await status.take(3)]
        await device.until(Phase.ONLINE)
    assert seen == [online(device), Offline(mac=device.mac), online(device)]
    assert 4.5 in bed.sleeps.calls
    assert device.phases == [*PATH_ONLINE, Phase.CONNECTING, Phase.ONLINE]


async def test_fault_stale_retained_leaves_an_old_online_before_the_real_one() -> None:
    async with bench() as bed:
        bed.sleeps.hold(7.0)
        device = bed.device(fault=FaultProfile.STALE_RETAINED, stale_gap_s=7.0)
        await device.agent.deliver(bed.credentials())
        await bed.sleeps.reached(7.0)
        # A verifier subscribing now finds only the stale, retained online.
        async with watch_status(bed.broker, "fleet/dev1") as status:
            stale = await status.next()
            bed.sleeps.release(7.0)
            real = await status.next()
        await device.until(Phase.ONLINE)
    assert stale.retained
    assert isinstance(stale.message, Online)
    assert stale.message.mac == device.mac
    assert stale.message.nonce != NONCE
    assert not real.retained
    assert real.message == online(device)


async def test_one_server_carries_a_fleet_through_to_online() -> None:
    size = 20
    async with bench(size) as bed:
        devices = [bed.device(n) for n in range(1, size + 1)]
        async with aiomqtt.Client(bed.broker.host, bed.broker.port, timeout=WAIT_S) as watcher:
            await watcher.subscribe("fleet/+/status", qos=1)
            answers = await asyncio.gather(
                *(
                    bed.http.post(
                        d.url + CREDENTIALS_PATH,
                        json=msgspec.to_builtins(bed.credentials(n, nonce=f"nonce-fleet-{n:010d}")),
                    )
                    for n, d in enumerate(devices, start=1)
                )
            )
            seen: dict[str, str] = {}
            async with asyncio.timeout(WAIT_S):
                async for message in watcher.messages:
                    assert isinstance(message.payload, bytes)
                    status = decode_status(message.payload)
                    assert isinstance(status, Online)
                    seen[status.mac] = status.nonce
                    if len(seen) == size:
                        break
            for device in devices:
                await device.until(Phase.ONLINE)
    assert {a.status_code for a in answers} == {202}
    assert seen == {d.mac: f"nonce-fleet-{n:010d}" for n, d in enumerate(devices, start=1)}


async def test_deliveries_records_the_nonce_of_every_answered_delivery_repeats_included() -> None:
    async with bench() as bed:
        device = bed.device(1)
        refusing = bed.device(2, fault=FaultProfile.REJECTS_CREDENTIALS)
        url = device.url + CREDENTIALS_PATH
        sent = msgspec.to_builtins(bed.credentials())
        other = msgspec.to_builtins(bed.credentials(nonce="nonce-other-000000000"))
        answers = [await bed.http.post(url, json=sent) for _ in range(2)]
        busy = await bed.http.post(url, json=other)
        refused = await bed.http.post(refusing.url + CREDENTIALS_PATH, json=sent)
        await device.until(Phase.ONLINE)
    assert [a.status_code for a in answers] == [202, 202]
    assert (busy.status_code, refused.status_code) == (409, 400)
    assert device.agent.deliveries == (NONCE, NONCE)  # the repeat counts; the refusals do not
    assert refusing.agent.deliveries == ()
    assert device.phases == PATH_ONLINE  # recording changes nothing the device does
