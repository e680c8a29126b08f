"""GET /api/v1/provisioning/sessions/{id}/report: JSON and CSV, never a secret."""

from __future__ import annotations

import csv
import io
from typing import Any

from orchestrator.batch.report import build_report
from orchestrator.domain.attempt import Attempt, AttemptPhase
from orchestrator.domain.candidate import CandidateEvent, CloudRegistration, Failure
from orchestrator.domain.errors import ErrorCode
from orchestrator.domain.mac import parse_mac
from orchestrator.ports.storage import AuditQuery
from tests.api.conftest import PASSWORD, SSID, Harness
from tests.fakes import T0, sighting

A, B, C, D = (f"02:00:00:00:00:0{n}" for n in "ABCD")
CLOUD: dict[str, Any] = {
    "provider": "thingsboard",
    "host": "tb.example",
    "port": 1883,
    "provision_device_key": "pk-7e3a0c51d2b94f68",
    "provision_device_secret": "ps-0c9d8e7f6a5b4c3d",
}
NONCE = "nonce-4f1e9a7b2c3d"
BROKER_USER = "dev-acct-91b7e2"
FAILED_MESSAGE = "=the device rejected the Wi-Fi password"


async def _batch(h: Harness) -> str:
    """A session with four devices: A verified (registered with the cloud), B failed once
    and provisioned on its retry, C failed, D not on the allowlist and left alone."""
    for mac in (A, B, C):
        added = await h.post("/allowlist", {"mac": mac, "description": f"dock {mac[-1]}"})
        assert added.is_success, added.text
    session = await h.start(cloud=CLOUD)
    sid = str(session["id"])
    for n, mac in enumerate((A, B, C, D)):
        await h.devices.feed(sighting(mac, ip=f"192.168.4.{10 + n}", rssi=-40 - n))
    await h.clock.advance(1)
    assert (await h.post(f"/batch/{sid}/provision-all", {})).status_code == 202
    batches = h.appliance.services.batches
    await h.clock.advance(1)
    for event in (CandidateEvent.DELIVERED, CandidateEvent.VERIFY):
        await batches.record(sid, parse_mac(A), event)
    cloud = CloudRegistration(registered=True, device_name="cam-0a")
    await batches.record(sid, parse_mac(A), CandidateEvent.VERIFIED, cloud=cloud)
    wrong = Failure(reason="auth_error", message=FAILED_MESSAGE, code=ErrorCode.DEVICE_REJECTED)
    await batches.record(sid, parse_mac(B), CandidateEvent.FAIL, wrong)
    await batches.record(sid, parse_mac(C), CandidateEvent.FAIL, wrong)
    await h.clock.advance(1)
    assert (await h.post(f"/batch/{sid}/devices/{B}/retry")).status_code == 202
    await batches.record(sid, parse_mac(B), CandidateEvent.DELIVERED)
    await h.appliance.store.attempts.save(
        Attempt(
            session_id=sid,
            mac=parse_mac(C),
            number=1,
            nonce=NONCE,
            phase=AttemptPhase.FAILED,
            strategy="reference",
            device_name="cam-0c",
            username=BROKER_USER,
            status_topic=f"devices/cam-0c/status/{NONCE}",
            created_at=T0,
            updated_at=T0,
            failure_reason="auth_error",
        )
    )
    return sid


async def _json_report(h: Harness, sid: str) -> dict[str, Any]:
    response = await h.get(f"/sessions/{sid}/report")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["success"] is True
    return body


async def test_json_report_shows_every_device_with_its_states(harness: Harness) -> None:
    sid = await _batch(harness)

    report = (await _json_report(harness, sid))["data"]

    session = report["session"]
    assert session["id"] == sid
    assert session["target_ssid"] == SSID
    assert session["state"] == "discovering"
    assert session["cloud"] == {"provider": "thingsboard", "host": "tb.example", "port": 1883}
    assert (session["device_count"], session["verified_count"], session["failed_count"]) == (
        4,
        1,
        1,
    )
    assert session["devices_by_state"] == {
        "discovered": 1,
        "provisioning": 0,
        "provisioned": 1,
        "verifying": 0,
        "verified": 1,
        "failed": 1,
    }
    devices = {d["mac"]: d for d in report["devices"]}
    assert list(devices) == [A, B, C, D]
    a, b, c, d = devices[A], devices[B], devices[C], devices[D]
    assert (a["state"], a["in_allowlist"], a["description"], a["rssi"]) == (
        "verified",
        True,
        "dock A",
        -40,
    )
    assert a["cloud_registration"] == {"registered": True, "device_name": "cam-0a"}
    assert [s["state"] for s in a["states"]] == [
        "discovered",
        "provisioning",
        "provisioned",
        "verifying",
        "verified",
    ]
    assert a["states"][0]["at"] == "2026-11-22T08:00:00Z"
    assert a["states"][-1]["at"] == "2026-11-22T08:00:02Z"
    assert a["states"][1]["action"] == "device.provision"
    assert a["verified_at"] == "2026-11-22T08:00:02Z"
    # B failed, was retried by the operator and has its credentials now.
    assert [s["state"] for s in b["states"]] == [
        "discovered",
        "provisioning",
        "failed",
        "provisioning",
        "provisioned",
    ]
    assert b["states"][2]["error"] == FAILED_MESSAGE
    assert b["states"][3]["action"] == "device.retry"
    assert b["states"][3]["actor"] == harness.api_key.split("_", 2)[1]  # the key's id
    assert (b["state"], b["retry_count"]) == ("provisioned", 1)
    assert "failure_reason" not in b
    # C failed: reason, code, message and when.
    assert (c["state"], c["failure_reason"], c["failure_code"], c["failure_message"]) == (
        "failed",
        "auth_error",
        "DEVICE_REJECTED",
        FAILED_MESSAGE,
    )
    assert c["failed_at"] == "2026-11-22T08:00:02Z"
    assert c["attempt_count"] == 1
    assert c["last_attempt"] == {
        "number": 1,
        "phase": "failed",
        "strategy": "reference",
        "started_at": "2026-11-22T08:00:00Z",
        "updated_at": "2026-11-22T08:00:00Z",
        "failure_reason": "auth_error",
    }
    # D is not on the allowlist: discovered, never touched.
    assert (d["state"], d["in_allowlist"], d["attempt_count"]) == ("discovered", False, 0)
    assert [s["state"] for s in d["states"]] == ["discovered"]


async def test_csv_report_is_one_row_per_device_as_an_attachment(harness: Harness) -> None:
    sid = await _batch(harness)

    response = await harness.get(f"/sessions/{sid}/report", format="csv")

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == f'attachment; filename="report-{sid}.csv"'
    assert "\r\n" in response.text  # RFC 4180 line ends
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["mac"] for r in rows] == [A, B, C, D]
    by_mac = {r["mac"]: r for r in rows}
    assert by_mac[A]["state"] == "verified"
    assert by_mac[A]["cloud_registered"] == "yes"
    assert by_mac[A]["verified_at"] == "2026-11-22T08:00:02Z"
    assert by_mac[A]["states"].split(" | ")[0] == "2026-11-22T08:00:00Z discovered"
    assert by_mac[A]["states"].endswith("2026-11-22T08:00:02Z verified")
    assert by_mac[C]["failure_reason"] == "auth_error"
    # A message that would start a spreadsheet formula is defused.
    assert by_mac[C]["failure_message"] == "'" + FAILED_MESSAGE
    assert by_mac[C]["rssi"] == "-42"
    assert by_mac[B]["retry_count"] == "1"
    assert by_mac[D]["in_allowlist"] == "no"
    assert {r["session_id"] for r in rows} == {sid}


async def test_no_secret_in_either_format(harness: Harness) -> None:
    sid = await _batch(harness)

    texts = [
        (await harness.get(f"/sessions/{sid}/report")).text,
        (await harness.get(f"/sessions/{sid}/report", format="csv")).text,
    ]

    for text in texts:
        assert sid in text
        for secret in (
            PASSWORD,
            CLOUD["provision_device_key"],
            CLOUD["provision_device_secret"],
            NONCE,
            BROKER_USER,
            harness.api_key,
        ):
            assert secret not in text


async def test_unknown_session_is_404_in_both_formats(harness: Harness) -> None:
    for params in ({}, {"format": "csv"}):
        response = await harness.get("/sessions/sess_nosuchsession000/report", **params)
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "SESSION_NOT_FOUND"


async def test_unknown_format_is_a_validation_error(harness: Harness) -> None:
    session = await harness.start()
    response = await harness.get(f"/sessions/{session['id']}/report", format="xlsx")
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "VALIDATION_FAILED"


async def test_report_needs_an_api_key(harness: Harness) -> None:
    session = await harness.start()
    response = await harness.client.get(
        f"/api/v1/provisioning/sessions/{session['id']}/report", headers={"X-API-Key": ""}
    )
    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHORIZED"


async def test_a_closed_session_still_has_its_report(harness: Harness) -> None:
    sid = await _batch(harness)
    assert (await harness.post(f"/batch/{sid}/stop")).status_code == 200

    report = (await _json_report(harness, sid))["data"]

    assert report["session"]["state"] == "closed"
    assert report["session"]["closed_reason"] == "stopped"
    assert len(report["devices"]) == 4


async def test_a_device_missing_from_the_audit_trail_gets_states_from_its_times(
    harness: Harness,
) -> None:
    session = await harness.start()
    await harness.devices.feed(sighting(A))
    entries = await harness.appliance.store.audit.page(AuditQuery(mac=parse_mac(A)))
    assert entries  # the trail has it; the pure builder's fallback is exercised below

    stored = await harness.appliance.store.sessions.get(str(session["id"]))
    assert stored is not None
    candidates = await harness.appliance.store.candidates.list_for(stored.id)
    report = build_report(stored, candidates, allowlist={}, attempts=[], audit=[], now=T0)
    assert [(s.state, s.at) for s in report.devices[0].states] == [("discovered", T0)]
