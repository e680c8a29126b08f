"""Seed 004 SC-005: 100 devices register concurrently against the stand-in, none fails."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from orchestrator.device.cloud import CloudStart, Outcome, start_up
from orchestrator.sim.thingsboard import ThingsBoardStandIn, thingsboard_standin
from tests.device.cloud.conftest import SPEC, Sleeps, prepare, read_config

DEVICES = 100
BUDGET_S = 30.0
"""SC-001: a registration completes within 30 s; all 100 at once must too."""

log = logging.getLogger(__name__)


async def test_100_devices_register_concurrently_without_a_failure(
    tmp_path: Path, tb: ThingsBoardStandIn, record_property: Callable[[str, object], None]
) -> None:
    directories = [prepare(tmp_path / f"cam-{i:03}", tb) for i in range(DEVICES)]
    sleeps = Sleeps()
    started = time.perf_counter()
    async with asyncio.timeout(BUDGET_S), asyncio.TaskGroup() as group:
        tasks = [group.create_task(start_up(d, sleep=sleeps)) for d in directories]
    elapsed_s = time.perf_counter() - started
    starts: list[CloudStart] = [t.result() for t in tasks]
    record_property("registrations", DEVICES)
    record_property("elapsed_s", round(elapsed_s, 3))
    log.info("%d concurrent registrations took %.2f s", DEVICES, elapsed_s)

    failures = [s.result for s in starts if s.result.outcome is not Outcome.REGISTERED]
    assert failures == []
    assert sleeps.calls == []  # not even one retry
    names = {s.result.device_name for s in starts}
    assert len(names) == DEVICES
    assert set(tb.devices) == names
    assert len(tb.provisions) == DEVICES
    for directory, start in zip(directories, starts, strict=True):
        device = read_config(directory)["device"]
        assert device["device_name"] == start.result.device_name
        assert device["access_token"] == tb.devices[device["device_name"]].credentials.token
    assert tb.stats.refused_connects == 0


async def test_100_devices_behind_one_address_never_trip_the_ip_rate_limit(tmp_path: Path) -> None:
    """ThingsBoard blocks an IP after 10 refused CONNECTs: a registration never probes."""
    spec = msgspec.structs.replace(SPEC, ip_rate_limit=True)
    async with thingsboard_standin(spec) as standin:
        directories = [prepare(tmp_path / f"cam-{i:03}", standin) for i in range(DEVICES)]
        async with asyncio.timeout(BUDGET_S), asyncio.TaskGroup() as group:
            tasks = [group.create_task(start_up(d, sleep=Sleeps())) for d in directories]
    assert all(t.result().result.outcome is Outcome.REGISTERED for t in tasks)
    assert (standin.stats.refused_connects, standin.stats.blocked_connects) == (0, 0)
