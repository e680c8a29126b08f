"""Contract section 1: the envelope on every answer, correlation ids, MACs, empty bodies."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.api.conftest import Harness


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["success"] is False
    assert body["code"] == code
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["retryable"], bool)
    assert body["correlation_id"] == response.headers["x-correlation-id"]
    assert "details" not in body["error"] or isinstance(body["error"]["details"], str)
    return body


async def test_unknown_route_answers_the_envelope_with_top_level_code(harness: Harness) -> None:
    response = await harness.client.get("/api/v1/provisioning/nonsense/route")
    assert_error(response, 404, "INVALID_REQUEST")
    response = await harness.client.get("/api/v2/anything")
    assert_error(response, 404, "INVALID_REQUEST")


async def test_wrong_method_answers_the_envelope(harness: Harness) -> None:
    response = await harness.client.put("/api/v1/provisioning/allowlist/stats")
    assert_error(response, 405, "INVALID_REQUEST")


async def test_validation_failure_answers_the_envelope_with_string_details(
    harness: Harness,
) -> None:
    response = await harness.post("/batch/start", {"target_ssid": "x", "target_password": "short"})
    body = assert_error(response, 400, "VALIDATION_FAILED")
    assert "target_password" in body["error"]["details"]


async def test_missing_field_is_missing_parameter(harness: Harness) -> None:
    response = await harness.post("/batch/start", {"target_password": "long enough"})
    body = assert_error(response, 400, "MISSING_PARAMETER")
    assert "target_ssid" in body["error"]["details"]


async def test_malformed_json_is_invalid_request(harness: Harness) -> None:
    response = await harness.client.post(
        "/api/v1/provisioning/batch/start",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert_error(response, 400, "INVALID_REQUEST")


async def test_success_envelope_and_correlation_echo(harness: Harness) -> None:
    cid = str(uuid.uuid4())
    response = await harness.client.get(
        "/api/v1/provisioning/allowlist", headers={"X-Correlation-ID": cid}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["correlation_id"] == cid
    assert response.headers["x-correlation-id"] == cid
    assert body["timestamp"].endswith("Z")


async def test_invalid_incoming_correlation_id_is_replaced(harness: Harness) -> None:
    response = await harness.client.get(
        "/api/v1/provisioning/allowlist", headers={"X-Correlation-ID": "bad id\twith spaces"}
    )
    cid = response.headers["x-correlation-id"]
    assert cid != "bad id\twith spaces"
    assert uuid.UUID(cid).version == 4
    assert response.json()["correlation_id"] == cid


async def test_correlation_id_on_framework_errors(harness: Harness) -> None:
    response = await harness.client.get("/api/v1/nope", headers={"X-Correlation-ID": "abc-123"})
    assert response.headers["x-correlation-id"] == "abc-123"
    assert response.json()["correlation_id"] == "abc-123"


@pytest.mark.parametrize("spelling", ["aa-bb-cc-dd-ee-ff", "AABBCCDDEEFF", "aA:bB:cC:dD:eE:fF"])
async def test_macs_come_back_canonical(harness: Harness, spelling: str) -> None:
    response = await harness.post("/allowlist", {"mac": spelling})
    assert response.status_code == 201
    assert response.json()["data"]["entry"]["mac"] == "AA:BB:CC:DD:EE:FF"


async def test_url_encoded_mac_in_path(harness: Harness) -> None:
    await harness.post("/allowlist", {"mac": "aa-bb-cc-dd-ee-ff"})
    response = await harness.client.get(
        "/api/v1/provisioning/allowlist/AA%3ABB%3ACC%3ADD%3AEE%3AFF"
    )
    assert response.status_code == 200
    assert response.json()["data"]["entry"]["mac"] == "AA:BB:CC:DD:EE:FF"


async def test_optional_fields_are_omitted_never_null(harness: Harness) -> None:
    session = await harness.start()
    assert "expires_at" not in session
    response = await harness.get(f"/batch/{session['id']}")
    text = response.text
    assert "null" not in text
    entry = (await harness.post("/allowlist", {"mac": "02:00:00:00:00:01"})).json()["data"]
    assert "description" not in entry["entry"]
    assert "used_at" not in entry["entry"]


async def test_empty_body_with_json_content_type_is_accepted(harness: Harness) -> None:
    session = await harness.start()
    for path in ("provision-all", "pause", "resume", "stop"):
        response = await harness.client.post(
            f"/api/v1/provisioning/batch/{session['id']}/{path}",
            content=b"",
            headers={"content-type": "application/json"},
        )
        assert response.status_code in (200, 202), (path, response.text)


async def test_delete_answers_200_json(harness: Harness) -> None:
    await harness.post("/allowlist", {"mac": "02:00:00:00:00:01"})
    response = await harness.delete("/allowlist/02:00:00:00:00:01")
    assert response.status_code == 200
    assert response.json()["data"]["success"] is True


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/allowlist"),
        ("POST", "/batch/start"),
        ("GET", "/batch/sess_x"),
        ("GET", "/sessions/recoverable"),
        ("GET", "/network/status"),
        ("DELETE", "/allowlist/all"),
    ],
)
async def test_every_provisioning_route_needs_a_key(
    harness: Harness, method: str, path: str
) -> None:
    url = f"/api/v1/provisioning{path}"
    missing = await harness.client.request(method, url, headers={"X-API-Key": ""})
    assert_error(missing, 401, "UNAUTHORIZED")
    wrong = await harness.client.request(method, url, headers={"X-API-Key": "dk_nope_nope"})
    assert_error(wrong, 401, "UNAUTHORIZED")


async def test_revoked_key_is_refused(harness: Harness) -> None:
    keys = harness.appliance.services.api_keys
    record = (await keys.list())[0]
    assert await keys.revoke(record.id)
    assert_error(await harness.get("/allowlist"), 401, "UNAUTHORIZED")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/batch/network"),
        ("GET", "/allowlist/stats"),
        ("POST", "/allowlist/bulk"),
        ("POST", "/allowlist/bulk-remove"),
        ("DELETE", "/allowlist/all"),
        ("GET", "/sessions/recoverable"),
        ("GET", "/sessions/history"),
    ],
)
async def test_literal_routes_are_not_captured_by_parameters(
    harness: Harness, method: str, path: str
) -> None:
    json: dict[str, list[str]] = {"entries": []} if path.endswith("bulk") else {"macs": []}
    response = await harness.client.request(
        method,
        f"/api/v1/provisioning{path}",
        json=json if method == "POST" else None,
        params={"confirm": "CONFIRM"} if path.endswith("all") else None,
    )
    assert response.status_code == 200, response.text
    body = response.json()["data"]
    assert "code" not in body
