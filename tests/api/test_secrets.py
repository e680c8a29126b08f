"""The target Wi-Fi password is write-only: never in a response, a log line or the database."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from orchestrator.context import ContextFilter
from orchestrator.domain.candidate import CandidateEvent, Failure
from orchestrator.domain.mac import parse_mac
from orchestrator.settings import Settings
from tests.api.conftest import PASSWORD, SSID, running
from tests.fakes import FakeClock, sighting

MAC = "02:00:00:00:00:0A"


async def test_the_password_never_leaves_the_appliance(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(ContextFilter())
    bodies: list[bytes] = []
    clock = FakeClock()
    async with running(settings, clock) as harness:
        requests = (
            harness.post("/allowlist", {"mac": MAC}),
            harness.post("/batch/start", {"target_ssid": SSID, "target_password": PASSWORD}),
            harness.post("/batch/start", {"target_ssid": SSID, "target_password": PASSWORD}),
            harness.post("/batch/start", {"target_ssid": "other", "target_password": PASSWORD}),
            harness.post("/batch/start", {"target_ssid": SSID, "target_password": PASSWORD[:3]}),
        )
        bodies += [(await request).content for request in requests]
        sid = (await harness.get("/sessions/history")).json()["data"]["sessions"][0]["id"]
        await harness.devices.feed(sighting(MAC))
        await harness.post(f"/batch/{sid}/devices/{MAC}/provision")
        failure = Failure(reason="auth_error", message="wrong Wi-Fi password")
        await harness.appliance.services.batches.record(
            sid, parse_mac(MAC), CandidateEvent.FAIL, failure
        )
        paths = (
            f"/batch/{sid}",
            f"/batch/{sid}/devices",
            "/sessions/history",
            "/sessions/recoverable",
            "/network/status",
        )
        bodies += [(await harness.get(path)).content for path in paths]
        bodies.append((await harness.post(f"/batch/{sid}/stop")).content)
        events = await harness.appliance.store.events.since(0)
    assert len(bodies) == 11
    for body in bodies:
        assert PASSWORD.encode() not in body
    for event in events:
        assert PASSWORD.encode() not in event.data
    assert caplog.records, "the run should have logged something"
    for record in caplog.records:
        assert PASSWORD not in record.getMessage()
        assert PASSWORD not in caplog.handler.format(record)
    assert not [line for line in caplog.text.splitlines() if PASSWORD in line]
    _assert_not_in_files(Path(settings.storage.data_dir), PASSWORD)


def _assert_not_in_files(directory: Path, secret: str) -> None:
    files = [p for p in directory.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".sqlite3") for p in files)
    for path in files:
        data = path.read_bytes()
        for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
            assert secret.encode(encoding) not in data, f"{secret!r} found in {path}"


async def test_the_sealed_password_opens_for_its_own_session_only(settings: Settings) -> None:
    from orchestrator.security.secretbox import SecretBox, SecretBoxError

    async with running(settings) as harness:
        first = await harness.start()
        await harness.post(f"/batch/{first['id']}/stop")
        second = await harness.start(target_password="another-password")
        store = harness.appliance.store
        sealed = await store.sessions.sealed_password(first["id"])
    assert sealed is not None
    box = SecretBox.from_key_file(settings.storage.secret_key_path)
    assert box.open(sealed, context=first["id"]) == PASSWORD
    with pytest.raises(SecretBoxError):
        box.open(sealed, context=second["id"])
