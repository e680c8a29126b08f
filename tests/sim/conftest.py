"""Fixtures of the network-namespace tier, for this package and any later one that imports
them (`from tests.sim.conftest import make_bed, netns_bed`).

    async def test_x(make_bed: BedFactory) -> None:
        async with make_bed(devices=20) as bed: ...

    @pytest.mark.parametrize("netns_bed", [50], indirect=True)
    async def test_y(netns_bed: TestBed) -> None: ...

Whole fleets of reference agents on either tier: `make_loopback_fleet` and `make_netns_fleet`.

The namespace fixtures skip, with the reason and the command to run, where beds cannot be
built (no root).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import pytest

from orchestrator.sim.fleet import Fleet, loopback_fleet
from orchestrator.sim.netns_fleet import NetnsFleet, netns_fleet
from orchestrator.sim.preflight import netns_available
from orchestrator.sim.testbed import TestBed

BedFactory = Callable[..., AbstractAsyncContextManager[TestBed]]
DEFAULT_DEVICES = 10


@functools.cache
def _unavailable() -> str | None:
    return netns_available()


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip tests marked `netns` where beds cannot be built."""
    if item.get_closest_marker("netns") and (reason := _unavailable()):
        pytest.skip(reason)


@pytest.fixture
def make_bed() -> BedFactory:
    """`TestBed.build`: `async with make_bed(devices=N) as bed`; torn down by the block."""
    if reason := _unavailable():
        pytest.skip(reason)
    return TestBed.build


@pytest.fixture
async def netns_bed(request: pytest.FixtureRequest, make_bed: BedFactory) -> AsyncIterator[TestBed]:
    """A built bed of 10 devices, or as many as `indirect` parametrisation says."""
    devices = getattr(request, "param", DEFAULT_DEVICES)
    async with make_bed(devices=devices) as bed:
        yield bed


@pytest.fixture
def make_loopback_fleet() -> Callable[..., AbstractAsyncContextManager[Fleet]]:
    """`async with make_loopback_fleet(FleetSpec(devices=N), timing=...) as fleet` (no
    privileges needed)."""
    return loopback_fleet


@pytest.fixture
def make_netns_fleet() -> Callable[..., AbstractAsyncContextManager[NetnsFleet]]:
    """`async with make_netns_fleet(spec, service_type=..., timing=...) as fleet`; skips where
    beds cannot be built."""
    if reason := _unavailable():
        pytest.skip(reason)
    return netns_fleet
