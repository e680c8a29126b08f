"""The onboarding network on the Pi: hostapd run by systemd, watched through its control socket.

`up()` starts the unit and attaches to hostapd's control interface (an AF_UNIX datagram
socket, the one `hostapd_cli` uses); `down()` detaches and stops the unit. While up, one task
owned by the backend keeps the station table:

- on attach it lists the stations already associated (STA-FIRST / STA-NEXT, as
  `hostapd_cli all_sta` does), so a restarted orchestrator sees them;
- it applies AP-STA-CONNECTED / AP-STA-DISCONNECTED events as they come;
- every `refresh_interval_s` (and right after a station joins) it PINGs hostapd and reads each
  station's signal with `STA <mac>`;
- when hostapd goes away (socket gone, connection refused, no answer) it logs one line, empties
  the table, and reattaches with backoff until hostapd is back.

Everything happens in that one task, like `wpa_ctrl_request`: a command is sent and datagrams
are read until its reply (the first one not starting with `<`), applying the events met on the
way. So there is no lock, no reply routing, and no second reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated

import msgspec

from orchestrator.domain.errors import ErrorCode, OrchestratorError
from orchestrator.domain.mac import Mac
from orchestrator.domain.network import NetworkStatus, Station
from orchestrator.network import hostapd_wire as wire
from orchestrator.network.changes import ChangeFeed

log = logging.getLogger(__name__)

Seconds = Annotated[float, msgspec.Meta(gt=0)]

CommandRunner = Callable[[Sequence[str]], Awaitable[None]]
"""Runs a command (`systemctl start <unit>`) to completion; raises CommandError or OSError."""


class HostapdSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where hostapd listens, which unit runs it, and how patiently we talk to it."""

    control_socket: str = "/var/run/hostapd/wlan0"
    """`ctrl_interface` of hostapd.conf joined with the interface name."""
    unit: str = "hostapd.service"
    start_timeout_s: Seconds = 10.0
    """How long up() waits for the control socket to answer after starting the unit."""
    command_timeout_s: Seconds = 3.0
    """How long a command may wait for its reply (hostapd_cli waits 10 s; hostapd answers
    in microseconds unless it is gone)."""
    refresh_interval_s: Seconds = 5.0
    """How often signals are re-read and hostapd PINGed."""
    reconnect_min_s: Seconds = 0.5
    reconnect_max_s: Seconds = 10.0


class ControlLostError(Exception):
    """hostapd's control interface is gone or does not answer (stopped or restarting)."""


class CommandError(Exception):
    """A command (systemctl) exited non-zero or hung; the message ends with its stderr."""


async def run_command(argv: Sequence[str], *, timeout_s: float = 30.0) -> None:
    """Run `argv` to completion; CommandError when it fails or outlives `timeout_s`."""
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(timeout_s):
            _, stderr = await process.communicate()
    except TimeoutError as exc:
        raise CommandError(f"{' '.join(argv)}: no exit within {timeout_s} s") from exc
    finally:
        if process.returncode is None:  # timed out or cancelled: never leave it behind
            process.kill()
            await process.wait()
    if process.returncode != 0:
        message = stderr.decode(errors="replace").strip()[-300:]
        raise CommandError(f"{' '.join(argv)} exited {process.returncode}: {message}")


class ControlChannel:
    """One client socket on hostapd's control interface, bound to a path of our own (hostapd
    answers to the sender's address, so the client must have one) and connected to hostapd's.
    """

    def __init__(
        self, sock: socket.socket, path: Path, on_event: Callable[[bytes], None], timeout_s: float
    ) -> None:
        self._sock = sock
        self._path = path
        self._on_event = on_event
        self._timeout_s = timeout_s

    @classmethod
    def open(
        cls,
        server: str,
        path: Path,
        *,
        on_event: Callable[[bytes], None],
        timeout_s: float,
    ) -> ControlChannel:
        """Bind `path` and connect to hostapd's socket `server`; ControlLostError when it is not
        there (FileNotFoundError) or nobody listens on it (ConnectionRefusedError)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)  # noqa: FBT003 - asyncio's sock_* need it
        try:
            sock.bind(str(path))
            sock.connect(server)
        except OSError as exc:
            sock.close()
            path.unlink(missing_ok=True)
            raise ControlLostError(f"cannot connect to {server}: {exc.strerror or exc}") from exc
        return cls(sock, path, on_event, timeout_s)

    async def request(self, command: str) -> bytes:
        """Send `command` and return hostapd's reply; events read before it go to `on_event`.
        ControlLostError when hostapd refuses the datagram or does not answer in time (a late reply
        would then be taken for the next command's: the caller must drop this channel)."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._timeout_s):
                await loop.sock_sendall(self._sock, command.encode())
                while wire.is_event(datagram := await self.receive()):
                    self._on_event(datagram)
        except TimeoutError as exc:
            raise ControlLostError(f"no reply to {command} within {self._timeout_s} s") from exc
        except OSError as exc:  # ECONNREFUSED: hostapd's socket closed; it may be restarting
            raise ControlLostError(f"{command}: {exc.strerror or exc}") from exc
        return datagram

    async def expect(self, command: str, reply: bytes) -> None:
        """Send `command`; ControlLostError unless hostapd answers exactly `reply`."""
        answer = await self.request(command)
        if answer != reply:
            raise ControlLostError(f"{command} answered {answer[:40]!r}, expected {reply!r}")

    async def receive(self) -> bytes:
        """The next datagram from hostapd, event or reply."""
        try:
            return await asyncio.get_running_loop().sock_recv(self._sock, wire.MAX_DATAGRAM)
        except OSError as exc:
            raise ControlLostError(f"receive failed: {exc.strerror or exc}") from exc

    def close(self) -> None:
        """Close the socket and remove its path."""
        self._sock.close()
        self._path.unlink(missing_ok=True)


class HostapdNetwork:
    """OnboardingNetwork backed by hostapd (see the module docstring for how it works)."""

    def __init__(
        self,
        ssid: str,
        settings: HostapdSettings | None = None,
        *,
        run_command: CommandRunner = run_command,
    ) -> None:
        self._ssid = ssid
        self._settings = settings or HostapdSettings()
        self._run_command = run_command
        self._stations: dict[Mac, Station] = {}
        self._unmeasured: set[Mac] = set()
        """Stations that joined since signals were last read: read them now, not in 5 s."""
        self._attached = False
        self._channel: ControlChannel | None = None
        self._task: asyncio.Task[None] | None = None
        self._client_dir: Path | None = None
        self._client_names = itertools.count(1)
        self._feed = ChangeFeed()
        self._lifecycle = asyncio.Lock()

    # -- the port -------------------------------------------------------------------------

    async def up(self) -> None:
        """Start the unit, attach to hostapd (waiting up to `start_timeout_s` for its control
        socket) and list the stations already associated. Idempotent. OrchestratorError
        NETWORK_ERROR when the unit does not start or its socket never answers; the unit is
        then stopped again, so no network runs unwatched."""
        async with self._lifecycle:
            if self._task is not None:
                return
            await self._systemctl("start")
            try:
                channel = await self._first_attach()
            except BaseException:
                self._remove_client_dir()
                with contextlib.suppress(OrchestratorError):
                    await self._systemctl("stop")
                raise
            self._task = asyncio.create_task(self._run(channel), name="hostapd-control")
            log.info(
                "onboarding network %r up: hostapd attached, %d station(s) already associated",
                self._ssid,
                len(self._stations),
            )

    async def down(self) -> None:
        """Detach from hostapd and stop the unit. Idempotent (stopping a stopped unit is a
        no-op for systemd). OrchestratorError NETWORK_ERROR when systemctl fails."""
        async with self._lifecycle:
            task, self._task = self._task, None
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self._channel is not None:
                # Best effort: hostapd also forgets a client whose socket has gone.
                with contextlib.suppress(ControlLostError):
                    await self._channel.request(wire.DETACH)
                self._drop_channel()
            self._remove_client_dir()
            await self._systemctl("stop")
            if task is not None:
                log.info("onboarding network %r down", self._ssid)

    def status(self) -> NetworkStatus:
        """Active while up and attached to hostapd; one device per associated station."""
        return NetworkStatus(
            ssid=self._ssid, is_active=self._attached, connected_devices=len(self._stations)
        )

    def stations(self) -> Mapping[Mac, Station]:
        """A copy of the station table (empty while down or reattaching)."""
        return dict(self._stations)

    def watch(self) -> AsyncIterator[NetworkStatus]:
        """The status now and after every change of the table or of `is_active`."""
        return self._feed.watch(self.status)

    # -- attaching ------------------------------------------------------------------------

    async def _first_attach(self) -> ControlChannel:
        """Attach, retrying while hostapd starts, for up to `start_timeout_s`."""
        settings = self._settings
        last_error: ControlLostError | None = None
        try:
            async with asyncio.timeout(settings.start_timeout_s):
                delays = _backoff(0.05, 1.0)
                while True:
                    try:
                        return await self._attach()
                    except ControlLostError as exc:
                        last_error = exc
                    await asyncio.sleep(next(delays))
        except TimeoutError as exc:
            raise OrchestratorError(
                ErrorCode.NETWORK_ERROR,
                "the onboarding access point did not come up",
                details=(
                    f"hostapd's control socket {settings.control_socket} did not answer within "
                    f"{settings.start_timeout_s} s of starting {settings.unit} "
                    f"({last_error or 'no answer'}); "
                    f"check ctrl_interface in hostapd.conf and `journalctl -u {settings.unit}`"
                ),
            ) from (last_error or exc)

    async def _reattach(self) -> ControlChannel:
        """Wait, try, wait longer, ... until hostapd answers again. Waits before the first
        try too, so a loop that keeps failing right after attaching cannot spin."""
        delays = _backoff(self._settings.reconnect_min_s, self._settings.reconnect_max_s)
        attempts = 0
        while True:
            await asyncio.sleep(next(delays))
            attempts += 1
            try:
                channel = await self._attach()
            except ControlLostError as exc:
                log.debug("hostapd still away (attempt %d): %s", attempts, exc)
                continue
            log.info("reattached to hostapd after %d attempt(s)", attempts)
            return channel

    async def _attach(self) -> ControlChannel:
        """Open a channel, check hostapd answers, subscribe to its events, list its stations."""
        if self._client_dir is None:
            # A private directory for our client sockets (hostapd_cli uses /tmp/wpa_ctrl_*).
            self._client_dir = Path(tempfile.mkdtemp(prefix="orchestrator-hostapd-"))
        channel = ControlChannel.open(
            self._settings.control_socket,
            self._client_dir / f"ctrl-{next(self._client_names)}",
            on_event=self._on_datagram,
            timeout_s=self._settings.command_timeout_s,
        )
        self._channel = channel
        try:
            await channel.expect(wire.PING, wire.PONG)
            await channel.expect(wire.ATTACH, wire.OK)
            await self._list_stations(channel)
        except BaseException:
            self._drop_channel()
            raise
        self._attached = True
        self._feed.changed()
        return channel

    async def _list_stations(self, channel: ControlChannel) -> None:
        """Walk hostapd's station list. A station that leaves while we stand on it makes
        STA-NEXT answer FAIL: walk again from the start (a few times at most), from an empty
        table, as each walk is a whole snapshot (events met on the way apply on top)."""
        for _ in range(3):
            self._clear_stations()
            if await self._walk_stations(channel):
                return
        log.debug("hostapd's station list kept changing while read; keeping what was read")

    async def _walk_stations(self, channel: ControlChannel) -> bool:
        """STA-FIRST, then STA-NEXT until the end; False when the walk broke off."""
        command = wire.STA_FIRST
        while (reply := await channel.request(command)) != wire.END_OF_LIST:
            if reply == wire.FAIL:
                return False
            try:
                info = wire.parse_station(reply)
            except wire.WireError as exc:
                log.debug("hostapd: cannot read the station list on: %s", exc)
                return True
            if info.authorized:
                self._put(info.mac, info.signal_dbm)
            command = wire.sta_next(info.mac)
        return True

    # -- the backend's task ---------------------------------------------------------------

    async def _run(self, channel: ControlChannel) -> None:
        """Serve the attached channel; whenever it is lost, empty the table and reattach."""
        while True:
            try:
                await self._serve(channel)
            except ControlLostError as exc:
                log.warning("lost hostapd's control interface (%s); reattaching", exc)
            except Exception:
                # Never let a bug end the watch: log it and start afresh.
                log.exception("hostapd control loop failed; reattaching")
            self._drop_channel()
            channel = await self._reattach()

    async def _serve(self, channel: ControlChannel) -> None:
        """Apply events until the refresh is due (or a station joined), refresh, repeat."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.refresh_interval_s):
                    while not self._unmeasured:
                        self._on_datagram(await channel.receive())
            await self._refresh(channel)

    async def _refresh(self, channel: ControlChannel) -> None:
        """PING (so a restarted hostapd is noticed even with no station), then re-read every
        station's signal; a station hostapd no longer knows has left unseen."""
        self._unmeasured.clear()
        await channel.expect(wire.PING, wire.PONG)
        for mac in list(self._stations):
            reply = await channel.request(wire.sta(mac))
            if reply in (wire.FAIL, wire.END_OF_LIST):
                self._remove(mac)
                continue
            try:
                info = wire.parse_station(reply)
            except wire.WireError as exc:
                log.debug("hostapd: ignoring a STA reply: %s", exc)
                continue
            if info.mac == mac and mac in self._stations:
                self._put(mac, info.signal_dbm)

    # -- the station table ----------------------------------------------------------------

    def _on_datagram(self, datagram: bytes) -> None:
        """Apply one unsolicited datagram; anything unexpected is logged and dropped."""
        if not wire.is_event(datagram):
            log.debug("hostapd: dropping a reply nobody waits for: %r", datagram[:80])
            return
        try:
            event = wire.parse_event(datagram)
        except wire.WireError as exc:
            log.debug("hostapd: dropping an unreadable event: %s", exc)
            return
        match event:
            case wire.StationJoined(mac=mac):
                if mac not in self._stations:
                    log.info("station %s joined the onboarding network", mac)
                    self._put(mac, None)
                self._unmeasured.add(mac)
            case wire.StationLeft(mac=mac):
                self._remove(mac)

    def _put(self, mac: Mac, rssi: int | None) -> None:
        station = Station(mac=mac, rssi=rssi)
        if self._stations.get(mac) != station:
            self._stations[mac] = station
            self._feed.changed()

    def _remove(self, mac: Mac) -> None:
        if self._stations.pop(mac, None) is not None:
            log.info("station %s left the onboarding network", mac)
            self._unmeasured.discard(mac)
            self._feed.changed()

    def _drop_channel(self) -> None:
        """Close the channel; without it hostapd's view is unknown, so the table empties."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        changed = self._attached or bool(self._stations)
        self._attached = False
        self._stations.clear()
        self._unmeasured.clear()
        if changed:  # once: watchers never see "inactive" with stations still counted
            self._feed.changed()

    def _clear_stations(self) -> None:
        self._unmeasured.clear()
        if self._stations:
            self._stations.clear()
            self._feed.changed()

    # -- the unit and the client directory ------------------------------------------------

    async def _systemctl(self, verb: str) -> None:
        argv = ("systemctl", verb, self._settings.unit)
        try:
            await self._run_command(argv)
        except (CommandError, OSError) as exc:
            raise OrchestratorError(
                ErrorCode.NETWORK_ERROR,
                f"could not {verb} the onboarding access point",
                details=str(exc),
            ) from exc

    def _remove_client_dir(self) -> None:
        if self._client_dir is not None:
            shutil.rmtree(self._client_dir, ignore_errors=True)
            self._client_dir = None


def _backoff(first_s: float, max_s: float) -> Iterator[float]:
    """first_s, twice that, ... up to max_s, then max_s forever."""
    delay = first_s
    while True:
        yield delay
        delay = min(delay * 2, max_s)
