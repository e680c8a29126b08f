"""Discovery for a session: every source running at once, their clues merged per MAC
(orchestrator.domain.discovery), each new device asked who it is, and the answers handed to
the session as sightings.

Any source may be missing or break (no hostapd, no multicast, no CAP_NET_RAW): discovery logs
it and goes on with the others. A source that crashes is restarted with a backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass

from orchestrator.domain.candidate import Failure
from orchestrator.domain.discovery import Action, Clue, DiscoveryTable, Left, Probe
from orchestrator.domain.errors import OrchestratorError
from orchestrator.domain.mac import Mac, parse_mac
from orchestrator.ports.devices import DeviceClient, DeviceSighting, DeviceUnreachableError
from orchestrator.ports.discovery import ClueSource, SourceUnavailableError
from orchestrator.protocol.messages import DeviceInfo

log = logging.getLogger(__name__)

PROBE_RETRY_S = (0.5, 1.0, 2.0, 4.0, 8.0)
"""Waits before asking a silent device again (its last wait repeats while it is present)."""
SOURCE_RESTART_S = (1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass(frozen=True, slots=True)
class _Answered:
    probe: Probe
    info: DeviceInfo


@dataclass(frozen=True, slots=True)
class _Silent:
    probe: Probe
    reason: str


@dataclass(frozen=True, slots=True)
class _Again:
    mac: Mac


_Item = Clue | _Answered | _Silent | _Again


class Discovery:
    """DeviceSource over clue sources and a device client."""

    def __init__(
        self,
        sources: Sequence[ClueSource],
        client: DeviceClient,
        *,
        probe_concurrency: int = 16,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._sources = list(sources)
        self._client = client
        self._gate = asyncio.Semaphore(probe_concurrency)
        self._sleep = sleep

    async def sightings(self, session_id: str) -> AsyncGenerator[DeviceSighting, None]:
        """Sightings until the caller stops iterating (close it with `aclosing`)."""
        inbox: asyncio.Queue[_Item] = asyncio.Queue()
        table = DiscoveryTable()
        last: dict[Mac, DeviceSighting] = {}
        silent: dict[Mac, int] = {}
        log.info(
            "session %s: discovering with %s",
            session_id,
            ", ".join(s.kind for s in self._sources) or "no sources",
        )
        tasks: set[asyncio.Task[None]] = set()

        def spawn(work: Coroutine[object, object, None]) -> None:
            task = asyncio.create_task(work)
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        try:
            for source in self._sources:
                spawn(self._pump(source, inbox))
            while True:
                item = await inbox.get()
                actions: list[Action] = []
                match item:
                    case Clue():
                        actions = table.clue(item)
                    case _Answered(probe, info):
                        silent.pop(probe.mac, None)
                        sighting = _sighting(probe, info, table.rssi(probe.mac))
                        last[probe.mac] = sighting
                        actions = table.probed(probe.mac, probe.ip, state=info.state)
                        yield sighting
                    case _Silent(probe, reason):
                        table.probe_failed(probe.mac)
                        attempt = silent[probe.mac] = silent.get(probe.mac, 0) + 1
                        wait = PROBE_RETRY_S[min(attempt, len(PROBE_RETRY_S)) - 1]
                        log.info("device %s did not answer (%s); again in %.1fs",
                                 probe.mac, reason, wait)  # fmt: skip
                        spawn(self._later(wait, _Again(probe.mac), inbox))
                    case _Again(mac):
                        actions = table.retry(mac)
                for action in actions:
                    if isinstance(action, Probe):
                        spawn(self._probe(action, inbox))
                    elif isinstance(action, Left) and action.mac in last:
                        yield _left(last[action.mac])
        finally:
            # The consumer stopped iterating: the sources and probes end with us.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _pump(self, source: ClueSource, inbox: asyncio.Queue[_Item]) -> None:
        restarts = 0
        while True:
            try:
                async for clue in source.clues():
                    restarts = 0
                    inbox.put_nowait(clue)
            except SourceUnavailableError as error:
                log.warning("discovery source %s unavailable, going on without it: %s",
                            source.kind, error)  # fmt: skip
                return
            except Exception:
                wait = SOURCE_RESTART_S[min(restarts, len(SOURCE_RESTART_S) - 1)]
                restarts += 1
                log.exception("discovery source %s failed; restarting in %.0fs", source.kind, wait)
                await self._sleep(wait)
            else:
                log.warning("discovery source %s ended", source.kind)
                return

    async def _probe(self, probe: Probe, inbox: asyncio.Queue[_Item]) -> None:
        async with self._gate:
            try:
                info = await self._client.info(probe.ip)
            except DeviceUnreachableError as error:
                inbox.put_nowait(_Silent(probe, str(error)))
                return
            except Exception as error:  # a bug must not end discovery of every other device
                log.exception("probing %s at %s failed", probe.mac, probe.ip)
                inbox.put_nowait(_Silent(probe, type(error).__name__))
                return
        if _mac_of(info) != probe.mac:
            # The address now belongs to another device (a lease moved): not this one's info.
            inbox.put_nowait(_Silent(probe, f"{probe.ip} answers as {info.mac}"))
            return
        inbox.put_nowait(_Answered(probe, info))

    async def _later(self, wait: float, item: _Item, inbox: asyncio.Queue[_Item]) -> None:
        await self._sleep(wait)
        inbox.put_nowait(item)


def _mac_of(info: DeviceInfo) -> Mac | None:
    try:
        return parse_mac(info.mac)
    except OrchestratorError:
        return None


def _sighting(probe: Probe, info: DeviceInfo, station_rssi: int | None) -> DeviceSighting:
    failure = None
    if info.last_failure is not None:
        lf = info.last_failure
        failure = Failure(
            reason=lf.reason,
            message=f"the device reports: {lf.message} ({lf.reason}, after {lf.attempts}"
            f" attempt{'s' if lf.attempts != 1 else ''})",
        )
    return DeviceSighting(
        mac=probe.mac,
        ip=probe.ip,
        # The access point's measurement of the link, when there is one; else the device's own.
        rssi=station_rssi if station_rssi is not None else info.rssi,
        firmware_version=info.firmware_version,
        family=info.family,
        model=info.model,
        state=str(info.state),
        failure=failure,
    )


def _left(seen: DeviceSighting) -> DeviceSighting:
    return DeviceSighting(
        mac=seen.mac,
        ip=seen.ip,
        rssi=seen.rssi,
        firmware_version=seen.firmware_version,
        family=seen.family,
        model=seen.model,
        state=seen.state,
        present=False,
    )
