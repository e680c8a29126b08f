"""Fakes for the ports that have no real implementation yet (discovery, the engine) and a
clock that tests move by hand."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from orchestrator.domain.mac import Mac, parse_mac
from orchestrator.domain.network import NetworkStatus, Station
from orchestrator.network.changes import ChangeFeed
from orchestrator.ports.devices import DeviceSighting

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


class FakeClock:
    """Time stands still until `advance`; `sleep` wakes when enough fake time has passed."""

    def __init__(self, start: datetime = T0) -> None:
        self._now = start
        self._moved = asyncio.Condition()

    def now(self) -> datetime:
        """The fake current time."""
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Wait until the clock has been advanced by `seconds`."""
        wake_at = self._now + timedelta(seconds=seconds)
        async with self._moved:
            await self._moved.wait_for(lambda: self._now >= wake_at)

    async def advance(self, seconds: float) -> None:
        """Move time forward and let sleepers whose time has come run."""
        async with self._moved:
            self._now += timedelta(seconds=seconds)
            self._moved.notify_all()
        # Give woken sleepers a turn before the test carries on.
        for _ in range(5):
            await asyncio.sleep(0)


class QueueDeviceSource:
    """Discovery fed by the test: `feed` returns once the service has handled the sighting."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[DeviceSighting] = asyncio.Queue()
        self._handled = asyncio.Event()

    async def sightings(self, session_id: str) -> AsyncGenerator[DeviceSighting, None]:
        """Yield fed sightings; asking for the next one means the last one was handled."""
        while True:
            sighting = await self._queue.get()
            yield sighting
            self._handled.set()

    async def feed(self, sighting: DeviceSighting) -> None:
        """Hand a sighting to the session and wait until it has been processed."""
        self._handled.clear()
        await self._queue.put(sighting)
        async with asyncio.timeout(5):
            await self._handled.wait()


class FakeNetwork:
    """An access point whose stations the test associates and disassociates."""

    def __init__(self, ssid: str = "DelicasaOnboard") -> None:
        self.ssid = ssid
        self.active = False
        self._stations: dict[Mac, Station] = {}
        self._feed = ChangeFeed()

    async def up(self) -> None:
        self.active = True
        self._feed.changed()

    async def down(self) -> None:
        self.active = False
        self._feed.changed()

    def status(self) -> NetworkStatus:
        return NetworkStatus(
            ssid=self.ssid, is_active=self.active, connected_devices=len(self._stations)
        )

    def stations(self) -> Mapping[Mac, Station]:
        return dict(self._stations)

    def watch(self) -> AsyncIterator[NetworkStatus]:
        return self._feed.watch(self.status)

    def associate(self, mac: str, rssi: int = -50) -> None:
        """A station joins."""
        self._stations[parse_mac(mac)] = Station(mac=parse_mac(mac), rssi=rssi)
        self._feed.changed()

    def disassociate(self, mac: str) -> None:
        """A station leaves."""
        del self._stations[parse_mac(mac)]
        self._feed.changed()


class RecordingEngine:
    """Remembers what it was asked to do; the test plays the device outcomes itself."""

    def __init__(self) -> None:
        self.submitted: list[tuple[str, Mac]] = []
        self.cancelled: list[tuple[str, Mac]] = []
        self.stopped: list[str] = []

    async def submit(self, session_id: str, macs: Sequence[Mac]) -> None:
        """Record a submission."""
        self.submitted.extend((session_id, mac) for mac in macs)

    async def cancel(self, session_id: str, mac: Mac) -> None:
        """Record a cancellation."""
        self.cancelled.append((session_id, mac))

    async def stop_session(self, session_id: str) -> None:
        """Record a stopped session."""
        self.stopped.append(session_id)


def sighting(
    mac: str, *, ip: str = "192.168.4.10", rssi: int = -52, fw: str = "1.4.2"
) -> DeviceSighting:
    """A present device."""
    return DeviceSighting(mac=parse_mac(mac), ip=ip, rssi=rssi, firmware_version=fw)
