"""CORS for pages served from the origins in `[server] cors_origins`; none by default."""

from __future__ import annotations

from pathlib import Path

import msgspec

from orchestrator.settings import ServerSettings, Settings
from tests.api.conftest import Harness, make_settings, running
from tests.api.test_transport import assert_error

DASHBOARD = "http://dashboard.local:3000"
ALLOWLIST = "/api/v1/provisioning/allowlist"


def _with_cors(tmp_path: Path) -> Settings:
    settings = make_settings(tmp_path)
    return msgspec.structs.replace(settings, server=ServerSettings(cors_origins=(DASHBOARD,)))


def _preflight(origin: str, method: str = "POST") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "content-type,x-api-key,x-totp-code",
    }


async def test_a_preflight_from_an_allowed_origin_passes_without_a_key(tmp_path: Path) -> None:
    async with running(_with_cors(tmp_path)) as h:
        del h.client.headers["X-API-Key"]
        response = await h.client.options(ALLOWLIST, headers=_preflight(DASHBOARD))

    assert response.status_code == 204, response.text
    assert response.headers["access-control-allow-origin"] == DASHBOARD
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    assert {"content-type", "x-api-key", "x-totp-code"} <= set(allowed.replace(" ", "").split(","))
    assert "access-control-allow-credentials" not in response.headers


async def test_a_cross_origin_request_still_needs_its_key(tmp_path: Path) -> None:
    async with running(_with_cors(tmp_path)) as h:
        answered = await h.client.get(ALLOWLIST, headers={"Origin": DASHBOARD})
        del h.client.headers["X-API-Key"]
        refused = await h.client.get(ALLOWLIST, headers={"Origin": DASHBOARD})

    assert answered.status_code == 200
    assert answered.headers["access-control-allow-origin"] == DASHBOARD
    exposed = answered.headers["access-control-expose-headers"].lower()
    assert "x-correlation-id" in exposed
    assert answered.headers["x-correlation-id"]
    assert_error(refused, 401, "UNAUTHORIZED")
    # The browser lets the page read the refusal, so it can tell the operator why.
    assert refused.headers["access-control-allow-origin"] == DASHBOARD


async def test_other_origins_get_no_cors_headers(tmp_path: Path) -> None:
    async with running(_with_cors(tmp_path)) as h:
        preflight = await h.client.options(ALLOWLIST, headers=_preflight("http://evil.example"))
        request = await h.client.get(ALLOWLIST, headers={"Origin": "http://evil.example"})

    assert "access-control-allow-origin" not in preflight.headers
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in request.headers


async def test_no_cors_by_default(harness: Harness) -> None:
    request = await harness.client.get(ALLOWLIST, headers={"Origin": DASHBOARD})
    del harness.client.headers["X-API-Key"]
    preflight = await harness.client.options(ALLOWLIST, headers=_preflight(DASHBOARD))

    assert request.status_code == 200
    assert not any(h.startswith("access-control-") for h in request.headers)
    assert not any(h.startswith("access-control-") for h in preflight.headers)
