"""GET /audit: who did what, filterable, never a secret."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import PASSWORD, Harness
from tests.api.test_transport import assert_error
from tests.fakes import sighting

A = "02:00:00:00:00:0A"


async def _entries(harness: Harness, **params: Any) -> list[dict[str, Any]]:
    response = await harness.get("/audit", **params)
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["data"]["entries"]
    return entries


async def test_sensitive_operations_transitions_and_auth_failures_are_audited(
    harness: Harness,
) -> None:
    await harness.post("/allowlist", {"mac": A})
    session = await harness.start()
    await harness.devices.feed(sighting(A))
    await harness.post(f"/batch/{session['id']}/devices/{A}/provision")
    await harness.client.get("/api/v1/provisioning/allowlist", headers={"X-API-Key": "dk_x_bad"})
    entries = await _entries(harness)
    actions = [e["action"] for e in entries]
    assert actions[:5] == [
        "auth.api_key",
        "device.provision",
        "device.discovered",
        "session.start",
        "allowlist.add",
    ]
    key_id = harness.api_key.split("_")[1]
    by_action = {e["action"]: e for e in entries}
    assert by_action["auth.api_key"]["outcome"] == "denied"
    assert by_action["session.start"]["actor"] == key_id
    assert by_action["session.start"]["session_id"] == session["id"]
    assert by_action["device.discovered"]["actor"] == "system"
    assert by_action["device.provision"]["mac"] == A
    assert by_action["device.provision"]["detail"] == "discovered->provisioning"
    assert all(e["correlation_id"] for e in entries if e["actor"] == key_id)
    ids = [e["id"] for e in entries]
    assert ids == sorted(ids, reverse=True)
    text = (await harness.get("/audit")).text
    assert PASSWORD not in text
    assert harness.api_key not in text
    assert "dk_x_bad" not in text


async def test_filters_and_paging(harness: Harness) -> None:
    await harness.post("/allowlist/bulk", {"entries": [{"mac": A}]})
    for n in range(5):
        await harness.post("/allowlist", {"mac": f"02:00:00:00:01:0{n}"})
    added = await _entries(harness, action="allowlist.add")
    assert len(added) == 5
    only_a = await _entries(harness, mac="02-00-00-00-01-03")
    assert [e["mac"] for e in only_a] == ["02:00:00:00:01:03"]
    first = (await harness.get("/audit", action="allowlist.add", limit=2)).json()["data"]
    assert len(first["entries"]) == 2
    second = (
        await harness.get(
            "/audit", action="allowlist.add", limit=2, before_id=first["next_before_id"]
        )
    ).json()["data"]
    assert [e["id"] for e in second["entries"]] == [e["id"] for e in added[2:4]]
    future = await _entries(harness, since="2100-01-01T00:00:00Z")
    assert future == []
    assert_error(await harness.get("/audit", since="2026-01-01T00:00:00"), 400, "VALIDATION_FAILED")
    assert_error(await harness.get("/audit", limit=0), 400, "VALIDATION_FAILED")
    assert_error(
        await harness.client.get("/api/v1/provisioning/audit", headers={"X-API-Key": ""}),
        401,
        "UNAUTHORIZED",
    )
