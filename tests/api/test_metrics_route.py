"""GET /metrics: the Prometheus text format, without a key, outside the V1 contract."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

import httpx
import msgspec
import pytest

from orchestrator.api.app import create_app
from orchestrator.api.openapi import openapi_document
from orchestrator.api.streams import STATE_KEY as STREAMS_KEY
from orchestrator.telemetry import Metrics
from tests.api.conftest import Harness


def devices_by_state() -> Mapping[str, int]:
    return {"discovered": 2, "verified": 1}


@contextlib.asynccontextmanager
async def client_with(
    harness: Harness, metrics: Metrics | None
) -> AsyncIterator[httpx.AsyncClient]:
    """A client with no API key on the harness's appliance, rebuilt with `metrics`."""
    services = msgspec.structs.replace(harness.appliance.services, metrics=metrics)
    app = create_app(services, harness.appliance.app.state[STREAMS_KEY], version=services.version)
    transport = httpx.ASGITransport(app=cast("Any", app))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
async def scraper(harness: Harness) -> AsyncIterator[tuple[httpx.AsyncClient, Metrics]]:
    """A client with no API key on the harness's appliance, rebuilt with metrics."""
    metrics = Metrics(devices_by_state)
    async with client_with(harness, metrics) as client:
        yield client, metrics


async def test_metrics_are_served_in_the_text_format_without_a_key(
    scraper: tuple[httpx.AsyncClient, Metrics],
) -> None:
    client, metrics = scraper
    metrics.stage_finished("provision", "ok", 0.5)

    response = await client.get("/metrics")

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == metrics.render()[1]
    assert response.headers["content-type"].startswith("text/plain; version=")
    text = response.text
    assert 'orchestrator_stage_total{outcome="ok",stage="provision"} 1.0' in text
    assert 'orchestrator_stage_duration_seconds_count{stage="provision"} 1.0' in text
    assert 'orchestrator_devices{state="discovered"} 2.0' in text
    assert 'orchestrator_devices{state="failed"} 0.0' in text


async def test_metrics_carry_no_envelope(scraper: tuple[httpx.AsyncClient, Metrics]) -> None:
    client, _ = scraper

    response = await client.get("/metrics")

    assert not response.text.lstrip().startswith("{")
    assert '"success"' not in response.text


async def test_the_appliance_serves_its_own_metrics(harness: Harness) -> None:
    response = await harness.client.get("/metrics", headers={"X-API-Key": ""})

    assert response.status_code == 200
    assert 'orchestrator_devices{state="verified"} 0.0' in response.text


async def test_without_metrics_the_endpoint_does_not_exist(harness: Harness) -> None:
    async with client_with(harness, None) as client:
        response = await client.get("/metrics")

    assert response.status_code == 404
    body = response.json()
    assert body["success"] is False
    assert body["error"]["message"] == "no such endpoint: GET /metrics"


def test_metrics_are_not_in_the_contract() -> None:
    assert "/metrics" not in openapi_document()["paths"]
