"""The test bed's onboarding network: a Linux bridge standing in for the access point.

Its stations are the device MACs the bridge has learned: its forwarding database (fdb),
listed once with `bridge -j fdb show` and followed with `bridge monitor fdb`. Entries the
bridge did not learn (permanent and `self` ones: its ports' own MACs, multicast groups) are
not stations. A device whose link goes down has its entries flushed with its port, so it
leaves the table as a station leaves an access point; one silent for the bridge's ageing
time (300 s by default) leaves it too. There is no radio, so no signal: RSSI is None.

Run it inside the bridge's network namespace: every command it starts inherits that of the
thread that starts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from orchestrator.domain.errors import ErrorCode, OrchestratorError
from orchestrator.domain.mac import Mac, is_mac, parse_mac
from orchestrator.domain.network import DEFAULT_ONBOARDING_SSID, NetworkStatus, Station
from orchestrator.network.changes import ChangeFeed

log = logging.getLogger(__name__)

_RTMGRP_NEIGH = 0x4
"""The netlink group `bridge monitor fdb` listens on (fdb entries are neighbour entries)."""
_NETLINK_ROUTE = 0
_NOT_LEARNED = frozenset({"permanent", "static", "self"})


@dataclass(frozen=True, slots=True)
class FdbEntry:
    """One forwarding-database entry: a MAC behind a port (`ifname`) of bridge `master`."""

    mac: str
    ifname: str | None
    master: str | None
    learned: bool
    """False for permanent, static and `self` entries: nobody's traffic put them there."""


def parse_fdb_json(text: str) -> list[FdbEntry]:
    """The output of `bridge -j fdb show`; ValueError when it is something else."""
    items = json.loads(text or "[]")
    if not isinstance(items, list):
        raise ValueError(f"expected a JSON list, got {type(items).__name__}")  # noqa: TRY004 - bad data
    entries = []
    for item in items:
        if isinstance(item, dict):
            marks = {str(item.get("state", "")), *map(str, item.get("flags") or [])}
            entries.append(
                FdbEntry(
                    mac=str(item.get("mac", "")),
                    ifname=_text(item.get("ifname")),
                    master=_text(item.get("master")),
                    learned=not _NOT_LEARNED & marks,
                )
            )
    return entries


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def parse_monitor_line(line: str) -> tuple[FdbEntry, bool] | None:
    """One line of `bridge monitor fdb` (`[Deleted ]<mac> dev <port> [...] master <bridge>
    [flags]`) as (entry, deleted); None for anything else."""
    tokens = line.split()
    deleted = bool(tokens) and tokens[0] == "Deleted"
    if deleted:
        tokens = tokens[1:]
    if not tokens or not is_mac(tokens[0]):
        return None
    rest = tokens[1:]
    entry = FdbEntry(
        mac=tokens[0],
        ifname=_after(rest, "dev"),
        master=_after(rest, "master"),
        learned=not (_NOT_LEARNED & set(rest)),
    )
    return entry, deleted


def _after(tokens: Sequence[str], key: str) -> str | None:
    for i, token in enumerate(tokens[:-1]):
        if token == key:
            return tokens[i + 1]
    return None


def is_unicast(mac: str) -> bool:
    """Whether `mac` names one station (the group bit of the first octet is clear)."""
    return not int(mac[:2], 16) & 1


class StationTable:
    """The stations of one bridge, from its fdb entries. Pure: feed it entries."""

    def __init__(self, bridge: str) -> None:
        self._bridge = bridge
        self._stations: dict[Mac, Station] = {}
        self._ports: set[Mac] = set()
        """The MACs of the bridge and its ports: never stations."""

    @property
    def stations(self) -> Mapping[Mac, Station]:
        """The stations now."""
        return self._stations

    def own(self, macs: Iterable[str]) -> None:
        """MACs of the bridge and its ports (`ip link`)."""
        self._ports.update(parse_mac(mac) for mac in macs if is_mac(mac))

    def load(self, entries: Iterable[FdbEntry]) -> bool:
        """Replace the table with a full listing; whether it changed."""
        before = dict(self._stations)
        self._stations.clear()
        for entry in entries:
            self.apply(entry, deleted=False)
        return self._stations != before

    def clear(self) -> bool:
        """Forget every station; whether there were any."""
        had = bool(self._stations)
        self._stations.clear()
        return had

    def apply(self, entry: FdbEntry, *, deleted: bool) -> bool:
        """Take one entry added or deleted; whether the stations changed."""
        if entry.master != self._bridge or not is_unicast(entry.mac):
            return False
        mac = parse_mac(entry.mac)
        if not entry.learned:
            if not deleted:
                self._ports.add(mac)  # a new port's own MAC
            return self._stations.pop(mac, None) is not None
        if deleted:
            return self._stations.pop(mac, None) is not None
        if mac in self._ports or mac in self._stations:
            return False
        self._stations[mac] = Station(mac=mac)
        return True


class BridgeNetwork:
    """OnboardingNetwork over a Linux bridge (the test bed's stand-in for the access point).
    `up()` sets the link up and follows the bridge's fdb with a `bridge monitor fdb` process
    owned until `down()` or `aclose()`; `async with` closes it."""

    def __init__(
        self,
        bridge: str,
        *,
        ssid: str = DEFAULT_ONBOARDING_SSID,
        command_timeout_s: float = 10.0,
        restart_s: float = 1.0,
    ) -> None:
        self._bridge = bridge
        self._ssid = ssid
        self._command_timeout_s = command_timeout_s
        self._restart_s = restart_s
        self._table = StationTable(bridge)
        self._active = False
        self._task: asyncio.Task[None] | None = None
        self._monitor: asyncio.subprocess.Process | None = None
        """The running monitor: stopped by down() even if its task never got to run."""
        self._feed = ChangeFeed()
        self._lifecycle = asyncio.Lock()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the port -------------------------------------------------------------------------

    async def up(self) -> None:
        """Set the bridge up and list its stations, then follow them. Idempotent.
        OrchestratorError NETWORK_ERROR when a command fails (the link is then set down
        again: no network runs unwatched)."""
        async with self._lifecycle:
            if self._task is not None:
                return
            await self._link("up")
            try:
                monitor = await self._start_monitor()
            except BaseException:
                with contextlib.suppress(OrchestratorError):
                    await self._link("down")
                raise
            self._active = True
            self._monitor = monitor
            self._task = asyncio.create_task(self._follow(monitor), name=f"fdb-{self._bridge}")
            self._feed.changed()
            log.info(
                "onboarding bridge %s up, %d station(s)", self._bridge, len(self._table.stations)
            )

    async def down(self) -> None:
        """Stop following the fdb and set the bridge down. Idempotent."""
        async with self._lifecycle:
            await self._stop_following()
            await self._link("down")
            if self._active:
                log.info("onboarding bridge %s down", self._bridge)
            self._active = False
            self._table.clear()
            self._feed.changed()

    async def aclose(self) -> None:
        """Stop the monitor process, leaving the link as it is."""
        async with self._lifecycle:
            await self._stop_following()
            self._active = False
            self._table.clear()
            self._feed.changed()

    def status(self) -> NetworkStatus:
        """Active while up; one device per learned station."""
        return NetworkStatus(
            ssid=self._ssid, is_active=self._active, connected_devices=len(self._table.stations)
        )

    def stations(self) -> Mapping[Mac, Station]:
        """A copy of the station table (empty while down)."""
        return dict(self._table.stations)

    def watch(self) -> AsyncIterator[NetworkStatus]:
        """The status now and after every change of the table or of `is_active`."""
        return self._feed.watch(self.status)

    # -- following the fdb ----------------------------------------------------------------

    async def _start_monitor(self) -> asyncio.subprocess.Process:
        """Start `bridge monitor fdb`, wait until it listens, then list the table: a change
        between the listing and the monitor's start would otherwise be lost."""
        try:
            monitor = await asyncio.create_subprocess_exec(
                "bridge",
                "monitor",
                "fdb",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
        except OSError as exc:
            raise _network_error("cannot start `bridge monitor fdb`", str(exc)) from exc
        try:
            await self._until_listening(monitor)
            ports = await self._json("ip", "-j", "link", "show", "master", self._bridge)
            own = await self._json("ip", "-j", "link", "show", "dev", self._bridge)
            self._table.own(str(link.get("address", "")) for link in [*ports, *own])
            listing = await self._run("bridge", "-j", "fdb", "show", "br", self._bridge)
            try:
                entries = parse_fdb_json(listing)
            except ValueError as exc:
                raise _network_error("cannot read the bridge's fdb", str(exc)) from exc
        except BaseException:
            await _stop(monitor)
            raise
        if self._table.load(entries):
            self._feed.changed()
        return monitor

    async def _until_listening(self, monitor: asyncio.subprocess.Process) -> None:
        try:
            async with asyncio.timeout(self._command_timeout_s):
                while not _subscribed(monitor.pid):
                    if monitor.returncode is not None:
                        raise _network_error(
                            "`bridge monitor fdb` exited", f"status {monitor.returncode}"
                        )
                    await asyncio.sleep(0.005)
        except TimeoutError as exc:
            raise _network_error(
                "`bridge monitor fdb` did not start listening",
                f"not subscribed within {self._command_timeout_s} s",
            ) from exc

    async def _follow(self, monitor: asyncio.subprocess.Process) -> None:
        """Apply the monitor's lines until down(); restart it should it die."""
        while True:
            try:
                await self._read(monitor)
            finally:
                await _stop(monitor)
            log.warning("`bridge monitor fdb` for %s exited; restarting", self._bridge)
            while True:
                await asyncio.sleep(self._restart_s)
                try:
                    monitor = self._monitor = await self._start_monitor()
                    break
                except OrchestratorError as exc:
                    log.warning("cannot follow bridge %s: %s", self._bridge, exc.details or exc)

    async def _read(self, monitor: asyncio.subprocess.Process) -> None:
        assert monitor.stdout is not None  # noqa: S101 - created with stdout=PIPE
        while line := await monitor.stdout.readline():
            parsed = parse_monitor_line(line.decode(errors="replace"))
            if parsed is not None and self._table.apply(parsed[0], deleted=parsed[1]):
                self._feed.changed()

    async def _stop_following(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])  # our own cancellation, should it come, still propagates
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            # A task cancelled before its first step never runs its `finally`.
            await _stop(monitor)

    async def _link(self, state: str) -> None:
        await self._run("ip", "link", "set", "dev", self._bridge, state)

    async def _json(self, *argv: str) -> list[dict[str, object]]:
        out = await self._run(*argv)
        try:
            found = json.loads(out or "[]")
        except ValueError as exc:
            raise _network_error(f"{' '.join(argv)} printed no JSON", str(exc)) from exc
        return [item for item in found if isinstance(item, dict)] if isinstance(found, list) else []

    async def _run(self, *argv: str) -> str:
        """Run `argv` to completion and return its stdout; OrchestratorError NETWORK_ERROR
        when it fails."""
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise _network_error(f"cannot run {argv[0]}", str(exc)) from exc
        try:
            async with asyncio.timeout(self._command_timeout_s):
                out, err = await process.communicate()
        except TimeoutError as exc:
            raise _network_error(
                f"{' '.join(argv)} hung", f"no exit within {self._command_timeout_s} s"
            ) from exc
        finally:
            await _stop(process)
        if process.returncode != 0:
            raise _network_error(
                f"{' '.join(argv)} failed",
                f"exit status {process.returncode}: {err.decode(errors='replace').strip()[-300:]}",
            )
        return out.decode(errors="replace")


def _network_error(message: str, details: str) -> OrchestratorError:
    return OrchestratorError(ErrorCode.NETWORK_ERROR, message, details=details)


async def _stop(process: asyncio.subprocess.Process) -> None:
    """Terminate `process` (kill it after a second) and reap it."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            async with asyncio.timeout(1.0):
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


def _subscribed(pid: int) -> bool:
    """Whether process `pid` holds a netlink socket listening to neighbour (fdb) changes:
    its sockets' inodes matched against its namespace's netlink table."""
    proc = Path("/proc", str(pid))
    try:
        sockets = {os.readlink(fd) for fd in (proc / "fd").iterdir()}
        table = (proc / "net" / "netlink").read_text(encoding="ascii").splitlines()[1:]
    except OSError:  # not started yet, or gone
        return False
    for row in table:
        fields = row.split()
        if (
            len(fields) >= 10
            and int(fields[1]) == _NETLINK_ROUTE
            and int(fields[3], 16) & _RTMGRP_NEIGH
            and f"socket:[{fields[9]}]" in sockets
        ):
            return True
    return False
