"""The discovery service: clue sources merged per MAC, each device probed, sightings out.

Sources and the device client are fakes here (their real versions have their own tests); the
merge, the probing, the retries and the degradation are the service's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator

import pytest

from orchestrator.discovery.service import Discovery
from orchestrator.domain.discovery import Clue, SourceKind
from orchestrator.domain.mac import parse_mac
from orchestrator.ports.devices import DeviceSighting, DeviceUnreachableError
from orchestrator.ports.discovery import SourceUnavailableError
from orchestrator.protocol.messages import DeviceInfo, DeviceState, LastFailure, PairingDisplay

A = parse_mac("02:00:00:00:00:0a")
B = parse_mac("02:00:00:00:00:0b")
WAIT_S = 5


class FeedSource:
    """A source whose clues the test feeds."""

    def __init__(self, kind: SourceKind) -> None:
        self.kind = kind
        self.queue: asyncio.Queue[Clue | Exception] = asyncio.Queue()
        self.starts = 0

    async def clues(self) -> AsyncIterator[Clue]:
        self.starts += 1
        while True:
            item = await self.queue.get()
            if isinstance(item, Exception):
                raise item
            yield item

    def say(self, mac: str, **fields: object) -> None:
        self.queue.put_nowait(Clue(mac=parse_mac(mac), source=self.kind, **fields))  # type: ignore[arg-type]


class BrokenSource:
    kind = SourceKind.ARP

    async def clues(self) -> AsyncIterator[Clue]:
        nothing: tuple[Clue, ...] = ()
        for clue in nothing:  # never runs; makes this an async generator
            yield clue
        raise SourceUnavailableError("no CAP_NET_RAW")


class FakeDevices:
    """DeviceClient: answers from a table of infos; silent devices raise."""

    def __init__(self) -> None:
        self.infos: dict[str, DeviceInfo] = {}
        self.silent: set[str] = set()
        self.asked: list[str] = []

    async def info(self, ip: str) -> DeviceInfo:
        self.asked.append(ip)
        if ip in self.silent or ip not in self.infos:
            raise DeviceUnreachableError(f"{ip} did not answer")
        return self.infos[ip]

    async def show_pairing(self, ip: str, display: PairingDisplay) -> None:
        raise AssertionError("discovery never shows pairing codes")


def info(
    mac: str, *, state: DeviceState = DeviceState.UNPROVISIONED, **fields: object
) -> DeviceInfo:
    values: dict[str, object] = {
        "protocol_version": 1, "mac": mac, "family": "esp32-cam", "model": "sim-1",
        "firmware_version": "1.4.2", "rssi": -61, "state": state,
        "security_schemes": ["plain"], **fields,
    }  # fmt: skip
    return DeviceInfo(**values)  # type: ignore[arg-type]


async def instant(_: float) -> None:
    await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def discovering(
    discovery: Discovery,
) -> AsyncIterator[AsyncGenerator[DeviceSighting, None]]:
    async with contextlib.aclosing(discovery.sightings("sess_test")) as sightings:
        yield sightings


async def next_of(sightings: AsyncGenerator[DeviceSighting, None]) -> DeviceSighting:
    async with asyncio.timeout(WAIT_S):
        return await anext(sightings)


async def test_sources_merge_into_one_sighting_per_device() -> None:
    stations, leases, mdns = (
        FeedSource(k) for k in (SourceKind.STATION, SourceKind.LEASE, SourceKind.MDNS)
    )
    devices = FakeDevices()
    devices.infos["10.42.0.5"] = info(A)
    async with discovering(Discovery([stations, leases, mdns], devices)) as sightings:
        stations.say(A, rssi=-44)
        leases.say(A, ip="10.42.0.5")
        mdns.say(A, ip="10.42.0.5", state="unprovisioned")
        seen = await next_of(sightings)
        # Something later must come through the same loop: proves nothing else was queued.
        devices.infos["10.42.0.6"] = info(B)
        leases.say(B, ip="10.42.0.6")
        other = await next_of(sightings)
    assert seen == DeviceSighting(
        mac=A, ip="10.42.0.5", rssi=-44, firmware_version="1.4.2", family="esp32-cam",
        model="sim-1", state="unprovisioned",
    )  # fmt: skip
    assert other.mac == B
    assert other.rssi == -61, "no station measurement: the device's own"
    assert devices.asked == ["10.42.0.5", "10.42.0.6"]


async def test_a_missing_source_degrades_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    leases = FeedSource(SourceKind.LEASE)
    devices = FakeDevices()
    devices.infos["10.42.0.5"] = info(A)
    with caplog.at_level(logging.WARNING, logger="orchestrator.discovery.service"):
        async with discovering(Discovery([BrokenSource(), leases], devices)) as sightings:
            leases.say(A, ip="10.42.0.5")
            assert (await next_of(sightings)).mac == A
    assert "arp unavailable, going on without it: no CAP_NET_RAW" in caplog.text


async def test_a_crashed_source_is_restarted(caplog: pytest.LogCaptureFixture) -> None:
    leases = FeedSource(SourceKind.LEASE)
    devices = FakeDevices()
    devices.infos["10.42.0.5"] = info(A)
    with caplog.at_level(logging.ERROR, logger="orchestrator.discovery.service"):
        async with discovering(Discovery([leases], devices, sleep=instant)) as sightings:
            leases.queue.put_nowait(RuntimeError("lease file vanished"))
            leases.say(A, ip="10.42.0.5")
            assert (await next_of(sightings)).mac == A
    assert leases.starts == 2
    assert "discovery source lease failed; restarting" in caplog.text


async def test_a_silent_device_is_asked_again() -> None:
    leases = FeedSource(SourceKind.LEASE)
    devices = FakeDevices()
    devices.infos["10.42.0.5"] = info(A)
    devices.silent.add("10.42.0.5")
    waits: list[float] = []
    woken = asyncio.Event()

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:  # answers from the third try on
            devices.silent.clear()
        await asyncio.sleep(0)
        woken.set()

    async with discovering(Discovery([leases], devices, sleep=sleep)) as sightings:
        leases.say(A, ip="10.42.0.5")
        assert (await next_of(sightings)).mac == A
    assert waits == [0.5, 1.0]
    assert devices.asked == ["10.42.0.5"] * 3


async def test_leaving_and_coming_back_with_a_failure_report() -> None:
    stations, leases = FeedSource(SourceKind.STATION), FeedSource(SourceKind.LEASE)
    devices = FakeDevices()
    devices.infos["10.42.0.5"] = info(A, state=DeviceState.PROVISIONED)
    async with discovering(Discovery([stations, leases], devices)) as sightings:
        leases.say(A, ip="10.42.0.5")
        assert (await next_of(sightings)).state == "provisioned"
        stations.say(A, present=False)
        left = await next_of(sightings)
        devices.infos["10.42.0.5"] = info(
            A,
            state=DeviceState.FAILED,
            last_failure=LastFailure(reason="auth_error", message="wrong password", attempts=3),
        )
        stations.say(A)
        back = await next_of(sightings)
    assert (left.mac, left.present) == (A, False)
    assert back.present
    assert back.failure is not None
    assert back.failure.reason == "auth_error"
    assert (
        back.failure.message == "the device reports: wrong password (auth_error, after 3 attempts)"
    )


async def test_an_address_answering_as_another_device_is_not_a_sighting() -> None:
    leases = FeedSource(SourceKind.LEASE)
    devices = FakeDevices()
    devices.infos["10.42.0.5"] = info(B)  # the lease moved; B answers there now
    devices.infos["10.42.0.6"] = info(B)
    async with discovering(Discovery([leases], devices, sleep=instant)) as sightings:
        leases.say(A, ip="10.42.0.5")
        leases.say(B, ip="10.42.0.6")
        assert (await next_of(sightings)).mac == B
