"""POST /api/v1/provisioning/pairing/claim: a live code puts its device on the allowlist;
malformed, unknown and repeated wrong codes get the contract's errors; step-up gates it."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.domain.mac import parse_mac
from orchestrator.domain.pairing import PAIRING_TTL, PairingSession
from orchestrator.domain.totp import GatedOperation
from tests.api.conftest import Harness
from tests.api.test_gates import gated_appliance, gated_settings
from tests.api.test_transport import assert_error

MAC = parse_mac("24:0A:C4:12:34:56")
IP = "192.168.4.20"
CLAIM = "/pairing/claim"


async def open_pairing(h: Harness, code: str = "KM9X3T") -> None:
    """A device showing `code` (no transport in these tests: the session is stored directly)."""
    now = h.clock.now()
    await h.appliance.store.provisioning.issue_session(
        PairingSession(
            pairing_code=code,
            device_id=MAC,
            device_ip=IP,
            created_at=now,
            expires_at=now + PAIRING_TTL,
        )
    )


async def test_a_live_code_adds_its_device_to_the_allowlist(harness: Harness) -> None:
    await open_pairing(harness)
    response = await harness.post(
        CLAIM, {"code": " km9x3t ", "description": "cam 7", "container_id": "box-3"}
    )
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert data["entry"] == {
        "mac": MAC,
        "description": "cam 7",
        "container_id": "box-3",
        "added_at": "2026-11-22T08:00:00Z",
        "used": False,
    }
    assert MAC in data["message"]
    listed = await harness.get(f"/allowlist/{MAC}")
    assert listed.json()["data"]["entry"] == data["entry"]


async def test_the_offer_path_opens_a_claimable_session(harness: Harness) -> None:
    pairing = harness.appliance.services.pairing
    # The appliance has no device transport here: the code cannot be shown, but is open.
    await pairing.offer(MAC, IP)
    session = await harness.appliance.store.provisioning.find_live_session_for_device(
        MAC, harness.clock.now()
    )
    assert session is not None
    response = await harness.post(CLAIM, {"code": session.pairing_code})
    assert response.status_code == 201, response.text
    assert response.json()["data"]["entry"]["mac"] == MAC


async def test_a_repeated_claim_answers_the_same_entry(harness: Harness) -> None:
    await open_pairing(harness)
    first = await harness.post(CLAIM, {"code": "KM9X3T"})
    again = await harness.post(CLAIM, {"code": "KM9X3T"})
    assert again.status_code == 201, again.text
    assert again.json()["data"]["entry"] == first.json()["data"]["entry"]


@pytest.mark.parametrize("code", ["KM9X3", "KM9X3O", "not a code at all"])
async def test_a_malformed_code_is_a_validation_error(harness: Harness, code: str) -> None:
    body = assert_error(await harness.post(CLAIM, {"code": code}), 400, "VALIDATION_FAILED")
    assert "6 characters" in body["error"]["details"]
    assert code not in str(body)


async def test_bad_bodies_are_refused(harness: Harness) -> None:
    assert_error(await harness.post(CLAIM, {}), 400, "MISSING_PARAMETER")
    assert_error(
        await harness.post(CLAIM, {"code": "KM9X3T", "mac": MAC}), 400, "VALIDATION_FAILED"
    )
    assert_error(await harness.post(CLAIM, {"code": "K" * 33}), 400, "VALIDATION_FAILED")


async def test_an_unknown_or_expired_code_is_device_not_found(harness: Harness) -> None:
    await open_pairing(harness)
    unknown = assert_error(await harness.post(CLAIM, {"code": "YYYYYY"}), 404, "DEVICE_NOT_FOUND")
    assert unknown["error"]["retryable"] is False
    await harness.clock.advance(PAIRING_TTL.total_seconds())
    expired = assert_error(await harness.post(CLAIM, {"code": "KM9X3T"}), 404, "DEVICE_NOT_FOUND")
    assert expired["error"]["message"] == unknown["error"]["message"]
    missing = await harness.get(f"/allowlist/{MAC}")
    assert_error(missing, 403, "DEVICE_NOT_IN_ALLOWLIST")


async def test_repeated_wrong_codes_are_rate_limited(harness: Harness) -> None:
    await open_pairing(harness)
    for _ in range(5):
        assert_error(await harness.post(CLAIM, {"code": "YYYYYY"}), 404, "DEVICE_NOT_FOUND")
    response = await harness.post(CLAIM, {"code": "KM9X3T"})
    body = assert_error(response, 429, "RATE_LIMITED")
    assert body["error"]["retryable"] is True
    assert body["error"]["retry_after_seconds"] == 300
    assert response.headers["retry-after"] == "300"
    await harness.clock.advance(300)
    assert (await harness.post(CLAIM, {"code": "KM9X3T"})).status_code == 201


async def test_claiming_is_gated_like_every_allowlist_change(tmp_path: Path) -> None:
    settings = gated_settings(tmp_path, frozenset({GatedOperation.ALLOWLIST_WRITE}))
    async with gated_appliance(settings) as g:
        now = g.clock.now()
        await g.appliance.store.provisioning.issue_session(
            PairingSession(
                pairing_code="KM9X3T",
                device_id=MAC,
                device_ip=IP,
                created_at=now,
                expires_at=now + PAIRING_TTL,
            )
        )
        url = f"/api/v1/provisioning{CLAIM}"
        refused = await g.client.post(url, json={"code": "KM9X3T"})
        assert_error(refused, 401, "UNAUTHORIZED")
        # Refused by the gate before the code was looked at: it is still claimable.
        allowed = await g.client.post(
            url, json={"code": "KM9X3T"}, headers={"X-TOTP-Code": await g.fresh_code()}
        )
        assert allowed.status_code == 201, allowed.text


async def test_the_claim_route_needs_an_api_key(harness: Harness) -> None:
    response = await harness.client.post(
        f"/api/v1/provisioning{CLAIM}", json={"code": "KM9X3T"}, headers={"X-API-Key": "nope"}
    )
    assert_error(response, 401, "UNAUTHORIZED")
