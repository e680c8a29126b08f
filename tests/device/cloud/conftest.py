"""A ThingsBoard stand-in on loopback, a config directory to provision from, and a sleep that
records the pauses instead of taking them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.sim.thingsboard import (
    ProvisionProfile,
    ThingsBoardSpec,
    ThingsBoardStandIn,
    thingsboard_standin,
)

KEY = "tb-profile-key-7f3a"
SECRET = "tb-profile-secret-9c1d"
SPEC = ThingsBoardSpec(profiles=(ProvisionProfile(key=KEY, secret=SECRET, name="thermal"),))
SPOTS = [{"name": "spot-1", "x": 10, "y": 20}, {"name": "spot-2", "x": 30, "y": 40}]


class Sleeps:
    """The injected sleep: records every pause and returns at once, after running the hook
    of that pause number (1-based) if a test set one."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self.hooks: dict[int, Callable[[], Awaitable[None]]] = {}

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        hook = self.hooks.get(len(self.calls))
        if hook is not None:
            await hook()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def tb() -> AsyncIterator[ThingsBoardStandIn]:
    async with thingsboard_standin(SPEC) as standin:
        yield standin


def provision_json(tb: ThingsBoardStandIn, **changes: Any) -> dict[str, Any]:
    """provision.json for `tb`, with 1 s timeouts (the shortest the schema allows)."""
    return {
        "server_url": tb.host,
        "server_port": tb.port,
        "provision_device_key": KEY,
        "provision_device_secret": SECRET,
        "timeout_seconds": 1,
    } | changes


def prepare(
    path: Path, tb: ThingsBoardStandIn, *, config: dict[str, Any] | None = None, **changes: Any
) -> Path:
    """A config directory asking for provisioning (provision.txt, provision.json) with a
    thermal_config.json holding measurement spots (or `config`)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "provision.txt").write_text("")
    (path / "provision.json").write_text(json.dumps(provision_json(tb, **changes)))
    (path / "thermal_config.json").write_text(json.dumps(config or {"measurement_spots": SPOTS}))
    return path


def read_config(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((path / "thermal_config.json").read_text())
    return data
