"""The device HTTP API over a real uvicorn serving several agents on 127.0.0.x sockets."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import msgspec
import pytest

from orchestrator.device.faults import FaultProfile
from orchestrator.device.http import ANY_HOST, ROUTES
from orchestrator.device.lifecycle import Phase
from orchestrator.protocol import PROTOCOL_VERSION
from orchestrator.protocol.messages import (
    CREDENTIALS_PATH,
    ENDPOINTS,
    IDENTIFY_PATH,
    INFO_PATH,
    MAX_REQUEST_BYTES,
    PAIRING_PATH,
    DeliveryReceipt,
    DeviceInfo,
    DeviceState,
    ErrorAnswer,
)
from tests.device.bench import Bench, bench


def body(bed: Bench, n: int = 1, **changes: str) -> dict[str, Any]:
    return msgspec.to_builtins(bed.credentials(n, **changes))  # type: ignore[no-any-return]


def error_of(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    answer = msgspec.json.decode(response.content, type=ErrorAnswer)
    assert answer.protocol_version == PROTOCOL_VERSION
    assert answer.error.code == code
    return answer.error.message


def test_every_endpoint_of_the_protocol_is_routed() -> None:
    assert set(ROUTES) == {(e.method, e.path) for e in ENDPOINTS}


async def test_info_shape_and_one_server_for_several_devices() -> None:
    async with bench() as bed:
        first, second = bed.device(1), bed.device(2)
        answers = [(await bed.http.get(d.url + INFO_PATH)) for d in (first, second)]
    assert [a.status_code for a in answers] == [200, 200]
    raw = answers[0].json()
    assert raw == {
        "protocol_version": PROTOCOL_VERSION,
        "mac": "02:00:00:00:00:01",
        "family": "esp32-cam",
        "model": "sim-1",
        "firmware_version": "2.4.1",
        "rssi": -61,
        "state": "unprovisioned",
        "security_schemes": ["plain"],
    }
    assert msgspec.json.decode(answers[1].content, type=DeviceInfo).mac == "02:00:00:00:00:02"
    assert first.url.startswith("http://127.0.0.2:")
    assert second.url.startswith("http://127.0.0.3:")


async def test_delivery_is_accepted_repeatable_and_busy_for_other_credentials() -> None:
    async with bench() as bed:
        bed.sleeps.hold(0.2)  # the agent stays on the onboarding network, about to leave
        device = bed.device()
        url = device.url + CREDENTIALS_PATH
        accepted = await bed.http.post(url, json=body(bed))
        again = await bed.http.post(url, json=body(bed))
        other = await bed.http.post(url, json=body(bed, nonce="nonce-bbbbbbbbbbbbbbbb"))
        info = (await bed.http.get(device.url + INFO_PATH)).json()
        await bed.sleeps.reached(0.2)
        bed.sleeps.release(0.2)
        await device.until(Phase.ONLINE)
    assert accepted.status_code == 202
    receipt = msgspec.json.decode(accepted.content, type=DeliveryReceipt)
    assert receipt == DeliveryReceipt(
        protocol_version=PROTOCOL_VERSION,
        nonce="nonce-aaaaaaaaaaaaaaaa",
        state=DeviceState.PROVISIONED,
    )
    assert again.status_code == 202
    assert again.content == accepted.content
    assert "other credentials" in error_of(other, 409, "busy")
    assert info["state"] == "provisioned"
    assert info["device_name"] == "cam-1"
    # Delivered three times, left once.
    assert device.phases == [Phase.ACCEPTED, Phase.JOINING, Phase.CONNECTING, Phase.ONLINE]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"target_ssid": 42}, "target_ssid"),
        ({"nonce": "short"}, "nonce"),
        ({"mqtt": {"broker_url": "http://x"}}, "broker_url"),
    ],
)
async def test_a_malformed_delivery_names_the_field(payload: dict[str, Any], field: str) -> None:
    async with bench(1) as bed:
        device = bed.device()
        sent = body(bed) | payload
        response = await bed.http.post(device.url + CREDENTIALS_PATH, json=sent)
    assert field in error_of(response, 400, "invalid_request")
    assert device.agent.phase is Phase.UNPROVISIONED


async def test_missing_fields_and_broken_json_are_invalid_requests() -> None:
    async with bench(1) as bed:
        device = bed.device()
        url = device.url + CREDENTIALS_PATH
        empty = await bed.http.post(url)
        broken = await bed.http.post(url, content=b"{not json")
    assert "target_ssid" in error_of(empty, 400, "invalid_request")
    assert "JSON" in error_of(broken, 400, "invalid_request")


async def test_an_oversize_body_is_refused_with_413() -> None:
    async with bench(1) as bed:
        device = bed.device()
        huge = body(bed, device_name="x" * MAX_REQUEST_BYTES)
        declared = await bed.http.post(device.url + CREDENTIALS_PATH, json=huge)

        async def chunks() -> Any:
            for _ in range(5):
                yield b" " * 1000

        chunked = await bed.http.post(device.url + CREDENTIALS_PATH, content=chunks())
    assert str(MAX_REQUEST_BYTES) in error_of(declared, 413, "payload_too_large")
    error_of(chunked, 413, "payload_too_large")
    assert device.agent.phase is Phase.UNPROVISIONED


async def test_unknown_routes_methods_and_addresses_are_not_found() -> None:
    async with bench(2) as bed:
        device = bed.device()
        unmounted_host, unmounted_port = bed.free[0]
        unknown = await bed.http.get(device.url + "/v1/nope")
        future = await bed.http.get(device.url + "/v2/info")
        method = await bed.http.get(device.url + CREDENTIALS_PATH)
        nobody = await bed.http.get(f"http://{unmounted_host}:{unmounted_port}{INFO_PATH}")
    assert "GET /v1/nope" in error_of(unknown, 404, "not_found")
    error_of(future, 404, "not_found")
    error_of(method, 404, "not_found")
    assert "no device" in error_of(nobody, 404, "not_found")


async def test_identify_and_pairing_display_round_trip() -> None:
    async with bench(1) as bed:
        device = bed.device()
        blink = await bed.http.post(device.url + IDENTIFY_PATH, json={"seconds": 12})
        default_blink = await bed.http.post(device.url + IDENTIFY_PATH)
        too_long = await bed.http.post(device.url + IDENTIFY_PATH, json={"seconds": 301})
        shown = await bed.http.post(
            device.url + PAIRING_PATH, json={"code": "K7Q2ZP", "claim_url": "https://x/c/1"}
        )
        showing = (await bed.http.get(device.url + PAIRING_PATH)).json()
        state = (await bed.http.get(device.url + INFO_PATH)).json()["state"]
        bad_code = await bed.http.post(device.url + PAIRING_PATH, json={"code": "abc"})
        cleared = await bed.http.post(device.url + PAIRING_PATH, json={})
        blank = (await bed.http.get(device.url + PAIRING_PATH)).json()
    assert blink.json() == {"protocol_version": PROTOCOL_VERSION, "ok": True}
    assert default_blink.status_code == 200
    assert device.agent.identify_s == 5
    assert "seconds" in error_of(too_long, 400, "invalid_request")
    assert shown.status_code == 200
    assert showing == {
        "code": "K7Q2ZP",
        "claim_url": "https://x/c/1",
        "protocol_version": PROTOCOL_VERSION,
    }
    assert state == DeviceState.PAIRING
    assert "code" in error_of(bad_code, 400, "invalid_request")
    assert cleared.status_code == 200
    assert blank == {"protocol_version": PROTOCOL_VERSION}
    assert device.phases == [Phase.PAIRING, Phase.UNPROVISIONED]


async def test_fault_unreachable_accepts_connections_but_never_answers() -> None:
    async with bench(2) as bed:
        silent, healthy = bed.device(1, fault=FaultProfile.UNREACHABLE), bed.device(2)
        with pytest.raises(httpx.ReadTimeout):
            await bed.http.get(silent.url + INFO_PATH, timeout=0.2)
        with pytest.raises(httpx.ReadTimeout):
            await bed.http.post(silent.url + CREDENTIALS_PATH, json=body(bed), timeout=0.2)
        assert (await bed.http.get(healthy.url + INFO_PATH)).status_code == 200
    assert silent.agent.phase is Phase.UNPROVISIONED


async def test_fault_slow_answers_only_after_its_delay() -> None:
    async with bench(1) as bed:
        bed.sleeps.hold(5.0)
        device = bed.device(fault=FaultProfile.SLOW)
        request = asyncio.create_task(bed.http.get(device.url + INFO_PATH))
        await bed.sleeps.reached(5.0)
        assert not request.done()
        bed.sleeps.release(5.0)
        async with asyncio.timeout(5):
            response = await request
    assert response.status_code == 200
    assert response.json()["mac"] == device.mac


async def test_fault_rejects_credentials_refuses_every_delivery() -> None:
    async with bench(1) as bed:
        device = bed.device(fault=FaultProfile.REJECTS_CREDENTIALS)
        first = await bed.http.post(device.url + CREDENTIALS_PATH, json=body(bed))
        second = await bed.http.post(device.url + CREDENTIALS_PATH, json=body(bed))
        info = (await bed.http.get(device.url + INFO_PATH)).json()
    assert "rejected" in error_of(first, 400, "invalid_request")
    error_of(second, 400, "invalid_request")
    assert info["state"] == "unprovisioned"
    assert device.phases == []
    assert bed.world.location(device.mac) == bed.world.onboarding_ssid


async def test_a_device_mounted_on_any_host_answers_on_its_port() -> None:
    async with bench(2) as bed:
        device = bed.device()
        host, port = bed.free[0]
        bed.api.mount((ANY_HOST, port), device.agent)
        answer = await bed.http.get(f"http://{host}:{port}{INFO_PATH}")
        bed.api.unmount((ANY_HOST, port))
        gone = await bed.http.get(f"http://{host}:{port}{INFO_PATH}")
    assert answer.json()["mac"] == device.mac
    error_of(gone, 404, "not_found")
