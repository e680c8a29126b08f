from __future__ import annotations

from tests.api.conftest import Harness


async def test_health_needs_no_key(harness: Harness) -> None:
    response = await harness.client.get("/api/v1/health", headers={"X-API-Key": ""})
    assert response.status_code == 200
    assert response.json()["data"]["database"] == "ok"
