"""An appliance on a temporary SQLite store, with fake discovery, engine and clock, driven
through litestar's in-process test client."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from httpx import Response

from orchestrator.edges import Edges
from orchestrator.network.standby import StandbyNetwork
from orchestrator.ports.devices import OnboardingNetwork
from orchestrator.security.stepup import SecuritySettings
from orchestrator.service import Appliance, run_appliance
from orchestrator.settings import BatchSettings, Settings, StorageSettings
from tests.fakes import FakeClock, QueueDeviceSource, RecordingEngine

PASSWORD = "correct-horse-battery-staple"
SSID = "DelicasaFactory"


@dataclass
class Harness:
    """Everything a test needs to drive and observe the appliance."""

    client: httpx.AsyncClient
    appliance: Appliance
    devices: QueueDeviceSource
    engine: RecordingEngine
    clock: FakeClock
    api_key: str

    async def start(self, **body: Any) -> dict[str, Any]:
        """Start a batch (201) and return its session object."""
        payload = {"target_ssid": SSID, "target_password": PASSWORD, **body}
        response = await self.client.post("/api/v1/provisioning/batch/start", json=payload)
        assert response.status_code == 201, response.text
        session: dict[str, Any] = response.json()["data"]["session"]
        return session

    async def post(self, path: str, json: Any = None) -> Response:
        """POST under /api/v1/provisioning."""
        return await self.client.post(f"/api/v1/provisioning{path}", json=json)

    async def get(self, path: str, **params: Any) -> Response:
        """GET under /api/v1/provisioning."""
        return await self.client.get(f"/api/v1/provisioning{path}", params=params)

    async def delete(self, path: str, **params: Any) -> Response:
        """DELETE under /api/v1/provisioning."""
        return await self.client.delete(f"/api/v1/provisioning{path}", params=params)


def make_settings(data_dir: Path, **batch: Any) -> Settings:
    """Settings for an appliance in `data_dir`."""
    # Step-up off: these tests are about the routes; tests/api/test_gates.py covers the gates.
    return Settings(
        storage=StorageSettings(data_dir=str(data_dir)),
        batch=BatchSettings(**batch),
        security=SecuritySettings(totp_required_for=frozenset()),
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@contextlib.asynccontextmanager
async def running(
    settings: Settings, clock: FakeClock | None = None, network: OnboardingNetwork | None = None
) -> AsyncIterator[Harness]:
    """One appliance run (a process lifetime) on `settings`' data directory."""
    clock = clock or FakeClock()
    devices, engine = QueueDeviceSource(), RecordingEngine()
    edges = Edges(
        devices=devices,
        engine=engine,
        network=network or StandbyNetwork(settings.batch.onboarding_ssid),
    )
    async with run_appliance(settings, edges=edges, clock=clock.now, sleep=clock.sleep) as app:
        _, key = await app.services.api_keys.create("tests")
        # httpx's ASGI transport runs the app on this event loop; litestar's AsyncTestClient
        # would run it on a thread of its own, away from the services' loop.
        transport = httpx.ASGITransport(app=cast("Any", app.app))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            client.headers["X-API-Key"] = key
            yield Harness(
                client=client,
                appliance=app,
                devices=devices,
                engine=engine,
                clock=clock,
                api_key=key,
            )


@pytest.fixture
async def harness(settings: Settings) -> AsyncIterator[Harness]:
    async with running(settings) as h:
        yield h
