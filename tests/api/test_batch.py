"""Batch routes: start, read, devices, provisioning requests, pause, resume, stop."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import PASSWORD, SSID, Harness
from tests.api.test_transport import assert_error
from tests.fakes import sighting

A, B, C = "02:00:00:00:00:0A", "02:00:00:00:00:0B", "02:00:00:00:00:0C"


async def _batch_with_devices(harness: Harness, allow: tuple[str, ...] = (A, B)) -> str:
    for mac in allow:
        assert (await harness.post("/allowlist", {"mac": mac})).status_code == 201
    session = await harness.start()
    for i, mac in enumerate((A, B, C)):
        await harness.devices.feed(sighting(mac, ip=f"192.168.4.{10 + i}", rssi=-40 - i))
    return str(session["id"])


async def _device(harness: Harness, sid: str, mac: str) -> dict[str, Any]:
    devices = (await harness.get(f"/batch/{sid}/devices")).json()["data"]["devices"]
    return next(d for d in devices if d["mac"] == mac)


async def test_start_returns_a_complete_session(harness: Harness) -> None:
    response = await harness.post(
        "/batch/start",
        {
            "target_ssid": SSID,
            "target_password": PASSWORD,
            "config": {"discovery_timeout_seconds": 30},
        },
    )
    assert response.status_code == 201
    data = response.json()["data"]
    session = data["session"]
    assert session["id"].startswith("sess_")
    assert session["id"][5:].isalnum()
    assert session["id"][5:].islower()
    assert session["state"] == "discovering"
    assert session["target_ssid"] == SSID
    assert (session["device_count"], session["verified_count"]) == (0, 0)
    assert session["config"] == {
        "discovery_timeout_seconds": 30,
        "provisioning_timeout_seconds": 120,
        "verification_timeout_seconds": 90,
    }
    assert data["message"]


async def test_repeating_the_same_start_returns_the_same_session(harness: Harness) -> None:
    first = await harness.start()
    again = await harness.post("/batch/start", {"target_ssid": SSID, "target_password": PASSWORD})
    assert again.status_code == 201
    assert again.json()["data"]["session"]["id"] == first["id"]


async def test_a_different_start_while_one_is_open_conflicts(harness: Harness) -> None:
    await harness.start()
    other = await harness.post(
        "/batch/start", {"target_ssid": SSID, "target_password": "another-pass"}
    )
    assert_error(other, 409, "SESSION_ALREADY_ACTIVE")


CLOUD = {
    "provider": "thingsboard",
    "host": "tb.local",
    "provision_device_key": "provision-key-1",
    "provision_device_secret": "provision-secret-1",
    "device_name_prefix": "line-a",
}


async def test_a_cloud_section_shows_where_but_never_its_secrets(harness: Harness) -> None:
    body = {"target_ssid": SSID, "target_password": PASSWORD, "cloud": CLOUD}
    response = await harness.post("/batch/start", body)
    assert response.status_code == 201
    session = response.json()["data"]["session"]
    assert session["cloud"] == {
        "provider": "thingsboard",
        "host": "tb.local",
        "port": 1883,
        "device_name_prefix": "line-a",
    }
    assert "provision-secret-1" not in response.text
    assert "provision-key-1" not in response.text
    again = await harness.post("/batch/start", body)
    assert again.json()["data"]["session"]["id"] == session["id"]
    other = {**body, "cloud": {**CLOUD, "provision_device_secret": "another"}}
    assert_error(await harness.post("/batch/start", other), 409, "SESSION_ALREADY_ACTIVE")
    read = await harness.get(f"/batch/{session['id']}")
    assert "provision-secret-1" not in read.text


async def test_a_malformed_cloud_section_is_refused(harness: Harness) -> None:
    bad_ones = (
        {**CLOUD, "port": 0},
        {**CLOUD, "device_name_prefix": "Line A"},
        {**CLOUD, "provider": "aws"},
        {**CLOUD, "provision_device_secret": ""},
    )
    for bad in bad_ones:
        response = await harness.post(
            "/batch/start", {"target_ssid": SSID, "target_password": PASSWORD, "cloud": bad}
        )
        assert response.status_code == 400, bad


async def test_discovered_devices_join_the_session(harness: Harness) -> None:
    sid = await _batch_with_devices(harness)
    data = (await harness.get(f"/batch/{sid}")).json()["data"]
    assert data["session"]["device_count"] == 3
    assert [d["mac"] for d in data["devices"]] == [A, B, C]
    first = data["devices"][0]
    assert first["state"] == "discovered"
    assert first["ip"] == "192.168.4.10"
    assert first["rssi"] == -40
    assert first["firmware_version"] == "1.4.2"
    assert first["retry_count"] == 0
    assert first["in_allowlist"] is True
    assert data["devices"][2]["in_allowlist"] is False
    assert data["network_status"] == {
        "ssid": "DelicasaOnboard",
        "is_active": True,
        "connected_devices": 0,
    }
    assert data["timeout_remaining"] == "60s"


async def test_include_devices_false_leaves_them_out(harness: Harness) -> None:
    sid = await _batch_with_devices(harness)
    data = (await harness.get(f"/batch/{sid}", include_devices="false")).json()["data"]
    assert "devices" not in data
    assert data["session"]["device_count"] == 3


async def test_devices_filter_by_state_and_empty_list(harness: Harness) -> None:
    sid = await _batch_with_devices(harness)
    listed = (await harness.get(f"/batch/{sid}/devices", state="verified")).json()["data"]
    assert listed == {"devices": []}
    bad = await harness.get(f"/batch/{sid}/devices", state="sleeping")
    assert_error(bad, 400, "VALIDATION_FAILED")


async def test_unknown_session_is_not_found(harness: Harness) -> None:
    assert_error(await harness.get("/batch/sess_doesnotexist"), 404, "SESSION_NOT_FOUND")
    assert_error(await harness.post("/batch/sess_doesnotexist/stop"), 404, "SESSION_NOT_FOUND")


async def test_provision_all_starts_only_allowlisted_and_is_idempotent(harness: Harness) -> None:
    sid = await _batch_with_devices(harness)
    response = await harness.post(f"/batch/{sid}/provision-all", {"only_allowlisted": True})
    assert response.status_code == 202
    assert response.json()["data"] | {"message": ""} == {
        "initiated_count": 2,
        "skipped_count": 1,
        "message": "",
    }
    assert sorted(mac for _, mac in harness.engine.submitted) == [A, B]
    assert (await _device(harness, sid, C))["state"] == "discovered"
    again = (await harness.post(f"/batch/{sid}/provision-all")).json()["data"]
    assert (again["initiated_count"], again["skipped_count"]) == (0, 1)
    assert len(harness.engine.submitted) == 2


async def test_provision_all_can_include_unlisted_devices(harness: Harness) -> None:
    sid = await _batch_with_devices(harness)
    data = (await harness.post(f"/batch/{sid}/provision-all", {"only_allowlisted": False})).json()
    assert data["data"]["initiated_count"] == 3


async def test_single_provision_rules(harness: Harness) -> None:
    sid = await _batch_with_devices(harness)
    response = await harness.post(f"/batch/{sid}/devices/{A.lower().replace(':', '-')}/provision")
    assert response.status_code == 202
    assert response.json()["data"]["mac"] == A
    assert response.json()["data"]["state"] == "provisioning"
    repeat = await harness.post(f"/batch/{sid}/devices/{A}/provision")
    assert repeat.status_code == 202
    assert len(harness.engine.submitted) == 1
    assert_error(
        await harness.post(f"/batch/{sid}/devices/{C}/provision"), 403, "DEVICE_NOT_IN_ALLOWLIST"
    )
    assert_error(
        await harness.post(f"/batch/{sid}/devices/02:00:00:00:00:99/provision"),
        404,
        "DEVICE_NOT_FOUND",
    )
    assert_error(
        await harness.post(f"/batch/{sid}/devices/not-a-mac/provision"), 400, "VALIDATION_FAILED"
    )


async def test_progress_from_the_engine_reaches_the_device(harness: Harness) -> None:
    sid = await _batch_with_devices(harness)
    await harness.post(f"/batch/{sid}/devices/{A}/provision")
    await _engine_verifies(harness, sid, A)
    device = await _device(harness, sid, A)
    assert device["state"] == "verified"
    assert "provisioned_at" in device
    assert "verified_at" in device
    session = (await harness.get(f"/batch/{sid}")).json()["data"]["session"]
    assert (session["provisioned_count"], session["verified_count"]) == (1, 1)
    again = await harness.post(f"/batch/{sid}/devices/{A}/provision")
    assert_error(again, 409, "DEVICE_INVALID_STATE")


async def _engine_verifies(harness: Harness, sid: str, mac: str) -> None:
    from orchestrator.domain.candidate import CandidateEvent
    from orchestrator.domain.mac import parse_mac

    batches = harness.appliance.services.batches
    for event in (CandidateEvent.DELIVERED, CandidateEvent.VERIFY, CandidateEvent.VERIFIED):
        await batches.record(sid, parse_mac(mac), event)


async def _engine_fails(harness: Harness, sid: str, mac: str) -> None:
    from orchestrator.domain.candidate import CandidateEvent, Failure
    from orchestrator.domain.errors import ErrorCode
    from orchestrator.domain.mac import parse_mac

    failure = Failure(
        reason="auth_error", message="wrong Wi-Fi password", code=ErrorCode.DEVICE_REJECTED
    )
    await harness.appliance.services.batches.record(
        sid, parse_mac(mac), CandidateEvent.FAIL, failure
    )


async def test_retry_until_the_budget_is_spent(harness: Harness) -> None:
    sid = await _batch_with_devices(harness)
    assert_error(await harness.post(f"/batch/{sid}/devices/{A}/retry"), 409, "DEVICE_INVALID_STATE")
    await harness.post(f"/batch/{sid}/devices/{A}/provision")
    for attempt in range(1, 4):
        await _engine_fails(harness, sid, A)
        failed = await _device(harness, sid, A)
        assert failed["state"] == "failed"
        assert failed["error_message"] == "wrong Wi-Fi password"
        retry = await harness.post(f"/batch/{sid}/devices/{A}/retry")
        assert retry.status_code == 202
        assert retry.json()["data"]["state"] == "provisioning"
        assert (await _device(harness, sid, A))["retry_count"] == attempt
        assert "error_message" not in await _device(harness, sid, A)
    repeated = await harness.post(f"/batch/{sid}/devices/{A}/retry")
    assert repeated.status_code == 202
    assert (await _device(harness, sid, A))["retry_count"] == 3
    await _engine_fails(harness, sid, A)
    body = assert_error(
        await harness.post(f"/batch/{sid}/devices/{A}/retry"), 409, "MAX_RETRIES_EXCEEDED"
    )
    assert body["error"]["retryable"] is False


async def test_skip_ends_failed_with_the_operator_reason(harness: Harness) -> None:
    sid = await _batch_with_devices(harness)
    await harness.post(f"/batch/{sid}/devices/{A}/provision")
    response = await harness.post(f"/batch/{sid}/devices/{A}/skip")
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["state"] == "failed"
    assert "skipped" in data["message"]
    assert harness.engine.cancelled == [(sid, A)]
    assert "operator" in (await _device(harness, sid, A))["error_message"]
    assert (await harness.post(f"/batch/{sid}/devices/{A}/skip")).status_code == 200
    provision_all = (await harness.post(f"/batch/{sid}/provision-all")).json()["data"]
    assert provision_all["initiated_count"] == 1  # B only; the skipped A stays failed
    await _engine_verifies(harness, sid, B)
    assert_error(await harness.post(f"/batch/{sid}/devices/{B}/skip"), 409, "DEVICE_INVALID_STATE")


async def test_pause_blocks_new_work_and_resume_restarts_it(harness: Harness) -> None:
    sid = await _batch_with_devices(harness)
    paused = await harness.post(f"/batch/{sid}/pause")
    assert paused.status_code == 200
    assert paused.json()["data"]["session"]["state"] == "paused"
    assert len(paused.json()["data"]["devices"]) == 3
    assert_error(await harness.post(f"/batch/{sid}/provision-all"), 400, "INVALID_REQUEST")
    assert (await harness.post(f"/batch/{sid}/pause")).status_code == 200
    resumed = await harness.post(f"/batch/{sid}/resume")
    assert resumed.json()["data"]["session"]["state"] == "active"
    assert (await harness.post(f"/batch/{sid}/provision-all")).status_code == 202


async def test_discovery_timeout_moves_the_session_to_active(harness: Harness) -> None:
    session = await harness.start(config={"discovery_timeout_seconds": 30})
    await harness.clock.advance(29)
    assert (await harness.get(f"/batch/{session['id']}")).json()["data"]["session"][
        "state"
    ] == "discovering"
    await harness.clock.advance(1)
    data = (await harness.get(f"/batch/{session['id']}")).json()["data"]
    assert data["session"]["state"] == "active"
    assert "timeout_remaining" not in data


async def test_stop_closes_and_is_idempotent(harness: Harness) -> None:
    sid = await _batch_with_devices(harness)
    for path in ("stop", "close"):
        response = await harness.post(f"/batch/{sid}/{path}")
        assert response.status_code == 200
        assert response.json()["data"]["session"]["state"] == "closed"
    assert harness.engine.stopped == [sid]
    assert_error(await harness.post(f"/batch/{sid}/pause"), 409, "SESSION_ALREADY_CLOSED")
    assert_error(await harness.post(f"/batch/{sid}/provision-all"), 409, "SESSION_ALREADY_CLOSED")
    network = (await harness.get("/network/status")).json()["data"]
    assert network["is_active"] is False
    assert (await harness.get("/batch/network")).json()["data"] == network
    await harness.start(target_password="a-new-password")


async def test_session_expiry_answers_gone(tmp_path: Any) -> None:
    from tests.api.conftest import make_settings, running

    async with running(make_settings(tmp_path, session_ttl_s=600)) as harness:
        session = await harness.start()
        assert session["expires_at"].endswith("Z")
        await harness.clock.advance(601)
        assert_error(await harness.get(f"/batch/{session['id']}"), 410, "SESSION_EXPIRED")
        history = (await harness.get("/sessions/history")).json()["data"]["sessions"]
        assert history[0]["state"] == "closed"


async def test_retry_needs_the_allowlist(harness: Harness) -> None:
    sid = await _batch_with_devices(harness)
    await harness.post(f"/batch/{sid}/devices/{C}/skip")
    refused = await harness.post(f"/batch/{sid}/devices/{C}/retry")
    assert_error(refused, 403, "DEVICE_NOT_IN_ALLOWLIST")
    assert harness.engine.submitted == []
