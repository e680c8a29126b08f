"""While a whole batch runs over real HTTP with step-up on, no secret (the Wi-Fi password, the
API key, the TOTP seed, a step-up token, a console cookie) appears in any log line, response
body, SSE frame, audit row, event-log row or database file."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import msgspec
import pytest

from orchestrator.context import ContextFilter
from orchestrator.domain.candidate import CandidateEvent, Failure
from orchestrator.domain.mac import parse_mac
from orchestrator.ports.storage import AuditQuery
from orchestrator.security.console_sessions import COOKIE_NAME
from orchestrator.security.stepup import SecuritySettings
from orchestrator.security.totp import code_at, time_step
from tests.api.conftest import PASSWORD, SSID
from tests.api.sse import SseReader
from tests.api.test_events import EVENTS, live_settings, serving
from tests.fakes import sighting

CLOUD = {
    "provider": "thingsboard",
    "host": "tb.example",
    "port": 1883,
    "provision_device_key": "pk-3f9c1e7a55d04b2e",
    "provision_device_secret": "ps-a81d2c9e0b7f4d63",
}
MACS = [f"02:00:00:00:00:{n:02X}" for n in range(1, 6)]


async def test_no_secret_escapes_a_whole_batch(  # noqa: PLR0915 - one story, told in order
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(ContextFilter())
    settings = msgspec.structs.replace(
        live_settings(tmp_path, heartbeat_s=0.05), security=SecuritySettings()
    )
    bodies: list[str] = []
    frames: list[str] = []
    async with serving(settings) as live:
        h = live.harness
        seed = await h.appliance.services.step_up.enroll()
        key = h.api_key
        async with httpx.AsyncClient(base_url=live.base_url, headers={"X-API-Key": key}) as client:

            async def call(method: str, url: str, **kwargs: object) -> httpx.Response:
                response = await client.request(method, url, **kwargs)  # type: ignore[arg-type]
                bodies.append(response.text)
                return response

            await call("GET", "/api/v1/auth/status")
            await call("POST", "/api/v1/auth/step-up", json={"code": "000000"})
            code = code_at(seed, time_step(h.clock.now()))
            stepped = await client.post("/api/v1/auth/step-up", json={"code": code})
            assert stepped.status_code == 200, stepped.text
            token = stepped.json()["data"]["token"]
            # The one place a token may appear is the answer that hands it out.
            for secret in (PASSWORD, key, seed):
                assert secret not in stepped.text
            gated = {"X-Step-Up-Token": token}
            await call(
                "POST",
                "/api/v1/provisioning/batch/start",
                json={"target_ssid": SSID, "target_password": PASSWORD, "cloud": CLOUD},
            )
            await call(
                "POST",
                "/api/v1/provisioning/allowlist/bulk",
                json={"entries": [{"mac": m} for m in MACS[:4]]},
                headers=gated,
            )
            started = await call(
                "POST",
                "/api/v1/provisioning/batch/start",
                json={"target_ssid": SSID, "target_password": PASSWORD, "cloud": CLOUD},
                headers=gated,
            )
            sid = started.json()["data"]["session"]["id"]
            signed_in = await call("POST", "/api/v1/auth/session", json={"api_key": key})
            cookie = signed_in.cookies[COOKIE_NAME]
            await call("GET", "/api/v1/provisioning/allowlist", headers={"X-API-Key": key + "x"})

            async with client.stream("GET", EVENTS, params={"api_key": key}) as response:
                sse = SseReader(response)
                frames += [json.dumps(f.data) for f in await sse.until("network.status_changed")]
                for n, mac in enumerate(MACS):
                    await h.devices.feed(sighting(mac, ip=f"192.168.4.{20 + n}"))
                await call("POST", f"/api/v1/provisioning/batch/{sid}/provision-all", json={})
                batches = h.appliance.services.batches
                for mac in MACS[:3]:
                    for event in (
                        CandidateEvent.DELIVERED,
                        CandidateEvent.VERIFY,
                        CandidateEvent.VERIFIED,
                    ):
                        await batches.record(sid, parse_mac(mac), event)
                failure = Failure(reason="auth_error", message="wrong Wi-Fi password")
                await batches.record(sid, parse_mac(MACS[3]), CandidateEvent.FAIL, failure)
                await call("POST", f"/api/v1/provisioning/batch/{sid}/devices/{MACS[4]}/skip")
                await call("GET", f"/api/v1/provisioning/batch/{sid}")
                await call("GET", "/api/v1/provisioning/audit", params={"limit": 500})
                await call("POST", f"/api/v1/provisioning/batch/{sid}/stop")
                # Read until the stop shows (a heartbeat may come any time: not a marker).
                while True:
                    frame = await sse.next()
                    frames.append(json.dumps(frame.data))
                    payload = frame.data["payload"] or {}
                    if payload.get("session", {}).get("state") == "closed":
                        break
            for path in ("/sessions/history", "/sessions/recoverable", "/network/status"):
                await call("GET", f"/api/v1/provisioning{path}")
        audit_rows = [
            msgspec.json.encode(e).decode()
            for e in await h.appliance.store.audit.page(AuditQuery(limit=10_000))
        ]
        event_rows = [e.data.decode() for e in await h.appliance.store.events.since(0)]

    assert len(frames) > 30
    assert any('"verified"' in f for f in frames)
    assert len(audit_rows) > 30
    # httpx and httpcore are the test's own client (they log the cookie they receive).
    logs = [
        caplog.handler.format(record)
        for record in caplog.records
        if not record.name.startswith(("httpx", "httpcore"))
    ]
    assert logs
    secrets = {
        "password": PASSWORD,
        "api key": key,
        "totp seed": seed,
        "token": token,
        "cookie": cookie,
        "cloud provision key": CLOUD["provision_device_key"],
        "cloud provision secret": CLOUD["provision_device_secret"],
    }
    places = {
        "response body": bodies,
        "SSE frame": frames,
        "audit row": audit_rows,
        "event log row": event_rows,
        "log line": logs,
    }
    _assert_nothing_leaks(secrets, places, Path(settings.storage.data_dir))


def _assert_nothing_leaks(
    secrets: dict[str, str], places: dict[str, list[str]], data_dir: Path
) -> None:
    for place, texts in places.items():
        for text in texts:
            for name, secret in secrets.items():
                assert secret not in text, f"{name} leaked into a {place}: {text[:200]}"
    for path in data_dir.rglob("*"):
        if path.is_file() and path.name != "secret.key":
            data = path.read_bytes()
            for name, secret in secrets.items():
                assert secret.encode() not in data, f"{name} found in {path}"
