"""The whole appliance discovering a fleet of 50 simulated devices on the namespace tier,
composed from configuration exactly as `orchestrator serve` composes it (bridge backend,
every discovery source, the device HTTP client), running in the Pi's namespace.

The merged stream makes exactly one candidate per device, with the signal and firmware the
device reports; a device that leaves lowers `connected_devices`; with mDNS blocked on the
onboarding network, discovery still completes through the other sources.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from orchestrator.discovery.leases import write_hook
from orchestrator.discovery.settings import DiscoverySettings, NetworkBackend, NetworkSettings
from orchestrator.domain.candidate import CandidateState
from orchestrator.service import run_appliance
from orchestrator.settings import Settings, StorageSettings
from orchestrator.sim.blocking import block_mdns
from orchestrator.sim.fleet import FleetSpec, unique_service_type
from orchestrator.sim.netns import ONBOARDING_BRIDGE
from orchestrator.sim.netns_fleet import NetnsFleet
from orchestrator.sim.setns import run_loop_in_namespace
from orchestrator.streaming.bus import Subscription
from tests.discovery.test_sources_netns import dhcp_pool
from tests.sim.conftest import make_netns_fleet
from tests.sim.test_fleet import FAST

__all__ = ["make_netns_fleet"]  # the fixture, imported for its use here

pytestmark = pytest.mark.netns
DEVICES = 50
WAIT_S = 30.0
T = TypeVar("T")


@pytest.fixture
async def fleet(
    make_netns_fleet: Callable[..., AbstractAsyncContextManager[NetnsFleet]], tmp_path: Path
) -> AsyncIterator[NetnsFleet]:
    hook = write_hook(tmp_path / "dhcp-hook.sh", tmp_path / "dhcp-events")
    build = make_netns_fleet(
        FleetSpec(devices=DEVICES, seed=11),
        service_type=unique_service_type(),
        timing=FAST,
        dhcp_script=hook,
    )
    async with build as fleet:
        yield fleet


def settings_for(fleet: NetnsFleet, data_dir: Path) -> Settings:
    """What an operator would write in the appliance's TOML for this bed."""
    pool = dhcp_pool(fleet)
    return Settings(
        storage=StorageSettings(data_dir=str(data_dir)),
        network=NetworkSettings(
            backend=NetworkBackend.BRIDGE,
            interface=ONBOARDING_BRIDGE,
            address=str(fleet.bed.onboarding_gateway),
        ),
        discovery=DiscoverySettings(
            lease_file=str(fleet.bed.dhcp.lease_file),
            dhcp_events_file=str(data_dir.parent / "dhcp-events"),
            mdns_service_type=fleet.service_type,
            arp_sweep=f"{pool[0]}-{pool[-1]}",
            arp_interval_s=1.0,
        ),
    )


class Events:
    """What the appliance's events have told a dashboard so far."""

    def __init__(self, subscription: Subscription) -> None:
        self._subscription = subscription
        self.discovered: set[str] = set()
        self.connected: int | None = None

    async def until(self, done: Callable[[Events], bool], what: str) -> None:
        """Read events until `done` holds."""
        try:
            async with asyncio.timeout(WAIT_S):
                while not done(self):
                    frame = await self._subscription.next(WAIT_S)
                    if frame is not None:
                        self._take(json.loads(frame.data))
        except TimeoutError:
            raise AssertionError(
                f"waited in vain for {what}: {len(self.discovered)} discovered, "
                f"{self.connected} connected"
            ) from None

    def _take(self, event: dict[str, Any]) -> None:
        if event["type"] == "device.discovered":
            self.discovered.add(event["payload"]["mac"])
        elif event["type"] == "network.status_changed":
            self.connected = event["payload"]["connected_devices"]


def on_home(home: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
    """Run `work` (bed operations) on the test's own loop."""
    return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, home))


async def discover_all(
    fleet: NetnsFleet, data_dir: Path, home: asyncio.AbstractEventLoop, *, leave: bool
) -> list[Any]:
    """In the Pi's namespace: open a session, wait for every device, optionally see one
    leave; return the session's candidates."""
    async with run_appliance(settings_for(fleet, data_dir)) as appliance:
        subscription, _ = appliance.bus.subscribe(None)
        events = Events(subscription)
        batches = appliance.services.batches
        snapshot, _ = await batches.start(fleet.spec.target_ssid, fleet.spec.target_password, None)
        await events.until(lambda e: len(e.discovered) == DEVICES, "every device")
        await events.until(lambda e: e.connected == DEVICES, "every station")
        if leave:
            await on_home(home, fleet.bed.switch_to_target(fleet.devices[0].host))
            await events.until(lambda e: e.connected == DEVICES - 1, "one station fewer")
            assert batches.network_status().connected_devices == DEVICES - 1
        candidates = await batches.devices(snapshot.id, None)
        await batches.stop(snapshot.id)
        appliance.bus.unsubscribe(subscription)
        return candidates


def assert_one_candidate_per_device(fleet: NetnsFleet, candidates: list[Any]) -> None:
    by_mac = {c.mac: c for c in candidates}
    assert len(candidates) == len(by_mac) == DEVICES
    for device in fleet.devices:
        candidate = by_mac[device.host.mac.upper()]
        identity = device.agent.identity
        assert candidate.state is CandidateState.DISCOVERED
        assert candidate.ip == device.ip
        assert candidate.firmware_version == identity.firmware_version
        # The bridge measures no signal: the device's own report is what the session shows.
        assert candidate.rssi == identity.rssi


async def test_the_merged_stream_finds_every_device_once_and_sees_one_leave(
    fleet: NetnsFleet, tmp_path: Path
) -> None:
    home = asyncio.get_running_loop()
    main = functools.partial(discover_all, fleet, tmp_path / "data", home, leave=True)
    candidates = await run_loop_in_namespace(fleet.bed.pi_namespace, main)
    assert_one_candidate_per_device(fleet, candidates)


async def test_with_mdns_blocked_discovery_completes_through_the_others(
    fleet: NetnsFleet, tmp_path: Path
) -> None:
    home = asyncio.get_running_loop()
    main = functools.partial(discover_all, fleet, tmp_path / "data", home, leave=False)
    async with block_mdns(fleet.bed):
        candidates = await run_loop_in_namespace(fleet.bed.pi_namespace, main)
    assert_one_candidate_per_device(fleet, candidates)
