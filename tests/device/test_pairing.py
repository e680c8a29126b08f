"""The device side of pair-by-code: the pairing button, the code on the display (with its QR
code), and clearing the display."""

from __future__ import annotations

import asyncio
import contextlib

import msgspec
import pytest

from orchestrator.batch.pairing import pairing_display
from orchestrator.device.agent import DeviceAgent
from orchestrator.device.errors import IllegalTransitionError
from orchestrator.device.lifecycle import Phase
from orchestrator.device.network import SimulatedNetworks
from orchestrator.device.settings import DeviceIdentity
from orchestrator.domain.pairing import MAX_CONSOLE_BASE_URL_LENGTH
from orchestrator.protocol import PROTOCOL_VERSION
from orchestrator.protocol.messages import (
    INFO_PATH,
    MAX_REQUEST_BYTES,
    PAIRING_PATH,
    Credentials,
    DeviceState,
    MqttCredentials,
    PairingDisplay,
)
from tests.device.bench import WAIT_S, bench

MAC = "02:00:00:00:00:01"
LONGEST_BASE = "https://" + "p" * (MAX_CONSOLE_BASE_URL_LENGTH - len("https://"))


def agent() -> DeviceAgent:
    return DeviceAgent(DeviceIdentity(mac=MAC), SimulatedNetworks().switch(MAC))


async def test_the_pairing_button_advertises_pairing_with_a_blank_display() -> None:
    device = agent()
    async with contextlib.aclosing(device.watch()) as phases:
        assert await anext(phases) is Phase.UNPROVISIONED
        device.request_pairing()
        async with asyncio.timeout(WAIT_S):
            assert await anext(phases) is Phase.PAIRING
    assert device.info().state is DeviceState.PAIRING
    assert device.pairing() == PairingDisplay()


async def test_pressing_the_button_again_changes_nothing() -> None:
    device = agent()
    device.request_pairing()
    device.show_pairing(PairingDisplay(code="KM9X3T"))
    device.request_pairing()
    assert device.phase is Phase.PAIRING
    assert device.pairing().code == "KM9X3T"


async def test_the_button_is_refused_once_credentials_arrived() -> None:
    device = agent()
    credentials = Credentials(
        target_ssid="Factory",
        target_password="correct-horse-battery",
        mqtt=MqttCredentials(
            broker_url="mqtt://127.0.0.1:1883",
            username="dev1",
            password="mqtt-secret",
            topic_prefix="fleet/dev1",
        ),
        device_name="cam-1",
        nonce="nonce-aaaaaaaaaaaaaaaa",
    )
    await device.deliver(credentials)
    with pytest.raises(IllegalTransitionError):
        device.request_pairing()
    assert device.phase is Phase.ACCEPTED


async def test_code_qr_code_and_clearing_over_http() -> None:
    display = pairing_display("YYYYYY", LONGEST_BASE)
    assert display.qr_svg is not None
    async with bench(1) as bed:
        device = bed.device()
        device.agent.request_pairing()
        waiting = (await bed.http.get(device.url + PAIRING_PATH)).json()
        state = (await bed.http.get(device.url + INFO_PATH)).json()["state"]
        body = msgspec.json.encode(display)
        shown = await bed.http.post(
            device.url + PAIRING_PATH,
            content=body,
            headers={"content-type": "application/json"},
        )
        showing = (await bed.http.get(device.url + PAIRING_PATH)).json()
        cleared = await bed.http.post(device.url + PAIRING_PATH, json={})
        after = (await bed.http.get(device.url + INFO_PATH)).json()["state"]
    assert waiting == {"protocol_version": PROTOCOL_VERSION}
    assert state == DeviceState.PAIRING
    assert len(body) <= MAX_REQUEST_BYTES
    assert shown.status_code == 200, shown.text
    assert showing == {
        "code": "YYYYYY",
        "claim_url": display.claim_url,
        "qr_svg": display.qr_svg,
        "protocol_version": PROTOCOL_VERSION,
    }
    assert cleared.status_code == 200
    assert after == DeviceState.UNPROVISIONED
    assert device.phases == [Phase.PAIRING, Phase.UNPROVISIONED]
