"""The appliance serves its OpenAPI document as JSON only: no docs UI pulling CDN scripts."""

from __future__ import annotations

import pytest

from tests.api.conftest import Harness

OPENAPI = "/api/v1/openapi"


async def test_the_openapi_json_is_served(harness: Harness) -> None:
    response = await harness.client.get(f"{OPENAPI}/openapi.json", headers={"X-API-Key": ""})

    assert response.status_code == 200
    assert response.json()["info"]["title"].startswith("Delicasa orchestrator")


async def test_the_openapi_root_answers_the_json_not_a_page(harness: Harness) -> None:
    response = await harness.client.get(OPENAPI)

    assert response.status_code == 200
    assert "html" not in response.headers["content-type"]
    assert "openapi" in response.json()


@pytest.mark.parametrize(
    "page",
    [
        "swagger",
        "redoc",
        "rapidoc",
        "elements",
        "scalar",
        "oauth2-redirect.html",
        "openapi.yaml",
        "openapi.yml",
    ],
)
async def test_docs_ui_pages_are_not_served(harness: Harness, page: str) -> None:
    response = await harness.client.get(f"{OPENAPI}/{page}")

    assert response.status_code == 404
    assert "<script" not in response.text
