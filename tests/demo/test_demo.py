"""`orchestrator demo` in-process: a newcomer's batch, driven through the HTTP API exactly as
the printed instructions say (the API key, a TOTP code read the demo way, start,
provision-all), ends with the allowlisted devices verified but the wrong-password one, and
the devices off the allowlist left discovered."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from orchestrator.demo.appliance import Demo, DemoOptions, demo_appliance
from orchestrator.demo.codes import read_code
from orchestrator.demo.instructions import API, welcome
from orchestrator.service import utc_now
from tests.api.sse import SseReader
from tests.sim.test_fleet import FAST

WAIT_S = 30.0


def data(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, f"{response.request.url}: {response.text}"
    body: dict[str, Any] = response.json()["data"]
    return body


async def wait_for_session(
    client: httpx.AsyncClient, session_id: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Follow the event stream (as `curl -N .../batch/events` does) until a `session.status`
    satisfies `done`."""
    async with (
        asyncio.timeout(WAIT_S),
        client.stream("GET", f"/{API}/batch/events", params={"session_id": session_id}) as stream,
    ):
        assert stream.status_code == 200
        reader = SseReader(stream)
        while True:
            frame = await reader.next()
            if frame.type == "session.status":
                session: dict[str, Any] = frame.data["payload"]["session"]
                if done(session):
                    return session


def printed_start_body(text: str) -> dict[str, Any]:
    """The JSON body the instructions' batch/start request sends."""
    found = re.search(r"-d '(\{.*?\})'", text)
    assert found, text
    body: dict[str, Any] = json.loads(found.group(1))
    return body


async def test_a_batch_provisions_end_to_end_as_the_instructions_say(tmp_path: Path) -> None:
    options = DemoOptions(port=0, data_dir=tmp_path / "demo", timing=FAST)
    async with (
        demo_appliance(options) as demo,
        httpx.AsyncClient(
            base_url=demo.url, headers={"X-API-Key": demo.api_key}, timeout=10, trust_env=False
        ) as client,
    ):
        text = welcome(demo, "orchestrator")
        for shown in (demo.url, demo.api_key, str(demo.data_dir), "otpauth://totp/"):
            assert shown in text
        for path in ("batch/events", "batch/start", "batch/$S/provision-all", "batch/$S\n"):
            assert f"{demo.url}{API}/{path}" in text
        body = printed_start_body(text)

        # Step-up is on: no code, no batch.
        refused = await client.post(f"/{API}/batch/start", json=body)
        assert refused.status_code == 401, refused.text

        now = utc_now()
        code = await read_code(demo.data_dir, now)  # what `orchestrator demo code` prints
        assert code == await demo.current_code(now)  # what the terminal announces
        started = await client.post(
            f"/{API}/batch/start", json=body, headers={"X-TOTP-Code": code.code}
        )
        session_id = data(started, 201)["session"]["id"]
        assert re.fullmatch(r"sess_[a-z0-9]+", session_id)  # what the printed grep picks out

        await wait_for_session(client, session_id, lambda s: s["device_count"] == 12)
        # `curl -X POST` without a body: the allowlisted devices only.
        outcome = data(await client.post(f"/{API}/batch/{session_id}/provision-all"), 202)
        assert (outcome["initiated_count"], outcome["skipped_count"]) == (9, 3)
        session = await wait_for_session(
            client, session_id, lambda s: s["verified_count"] + s["failed_count"] == 9
        )
        view = data(await client.get(f"/{API}/batch/{session_id}"), 200)

    assert (session["verified_count"], session["failed_count"]) == (8, 1)
    assert_as_planned(demo, view["devices"])


def assert_as_planned(demo: Demo, devices: list[dict[str, Any]]) -> None:
    roster = demo.roster
    by_mac = {d["mac"]: d for d in devices}
    assert set(by_mac) == {d.mac for d in demo.fleet.devices}
    for mac in roster.allowlisted:
        device = by_mac[mac]
        if mac == roster.wrong_password:
            assert device["state"] == "failed", device
            assert "auth_error" in device["error_message"], device
        else:
            assert device["state"] == "verified", device
    for mac in roster.unlisted:
        assert by_mac[mac]["state"] == "discovered", by_mac[mac]
    families = {d.agent.identity.family for d in demo.fleet.devices if d.mac in roster.allowlisted}
    assert families == {"esp32-cam", "thermal-camera"}


async def test_a_throwaway_data_dir_is_removed_and_a_given_one_kept(tmp_path: Path) -> None:
    async with demo_appliance(DemoOptions(port=0, timing=FAST)) as demo:
        throwaway = demo.data_dir
        assert not demo.kept
        assert throwaway.is_dir()
    assert not throwaway.exists()

    given = tmp_path / "kept"
    async with demo_appliance(DemoOptions(port=0, data_dir=given, timing=FAST)) as demo:
        first = demo.enrolment
    # A second run on the same directory enrols a new seed (and makes a new key).
    async with demo_appliance(DemoOptions(port=0, data_dir=given, timing=FAST)) as demo:
        assert demo.kept
        assert demo.enrolment != first
        keys = await demo.appliance.services.api_keys.list()
    assert given.is_dir()
    assert len(keys) == 2
