"""A fake hostapd control interface: a real AF_UNIX datagram socket answering as hostapd 2.10
does (hostapd/ctrl_iface.c, src/ap/ctrl_iface_ap.c) and sending `<3>` events to attached
clients.

    async with FakeHostapd(tmp_path / "wlan0") as hostapd:
        hostapd.associate("02:00:00:00:00:0a", signal=-52)   # there before anyone attaches
        await hostapd.connect("02:00:00:00:00:0b")           # AP-STA-CONNECTED to attached
        await hostapd.restart()                              # socket removed and re-created
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

STA_REPLY = (Path(__file__).parent / "recordings" / "sta-fullmac.txt").read_text()
AUTHORIZED = "[AUTH][ASSOC][AUTHORIZED]"
AUTHENTICATING = "[AUTH][ASSOC]"  # e.g. a station sending the wrong PSK
MSG_INFO = 3  # the level hostapd gives AP-STA-* events (wpa_msg(..., MSG_INFO, ...))


@dataclass
class FakeStation:
    """One station in hostapd's table."""

    mac: str
    signal: int = -52
    authorized: bool = True

    def mib(self) -> bytes:
        """What hostapd answers to STA / STA-FIRST / STA-NEXT for this station."""
        flags = AUTHORIZED if self.authorized else AUTHENTICATING
        return STA_REPLY.format(mac=self.mac, flags=flags, signal=self.signal).encode()


@dataclass
class FakeHostapd:
    """hostapd's per-interface control socket at `path`."""

    path: Path
    stations: dict[str, FakeStation] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    """Every command received, in order, across restarts."""
    attached: set[str] = field(default_factory=set)
    """Client socket paths that sent ATTACH (and have not been dropped since)."""
    attaches: int = 0
    silent: bool = False
    """Receive commands but answer none (a hung hostapd)."""
    before_reply: Callable[[str], None] | None = None
    """Called with each command before it is answered (to change the table mid-walk)."""
    _sock: socket.socket | None = None
    _task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> FakeHostapd:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Bind the socket (replacing a leftover file, as hostapd does) and serve it."""
        self.path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind(str(self.path))
        self._sock = sock
        self._task = asyncio.create_task(self._serve(sock), name="fake-hostapd")

    async def stop(self) -> None:
        """Close the socket and remove its file; attached clients are forgotten."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self.path.unlink(missing_ok=True)
        self.attached.clear()

    async def restart(self, stations: Iterable[FakeStation] = ()) -> None:
        """Stop and start again with a new table (a restart drops every association)."""
        await self.stop()
        self.stations = {s.mac: s for s in stations}
        await self.start()

    def associate(self, mac: str, *, signal: int = -52, authorized: bool = True) -> None:
        """Put a station in the table without telling anyone (it was there before)."""
        self.stations[mac] = FakeStation(mac, signal, authorized)

    async def connect(self, mac: str, *, signal: int = -52, extra: str = "") -> None:
        """A station joins: table entry plus AP-STA-CONNECTED (with `extra` words)."""
        self.associate(mac, signal=signal)
        await self.emit(f"<{MSG_INFO}>AP-STA-CONNECTED {mac}{extra}".encode())

    async def disconnect(self, mac: str) -> None:
        """A station leaves: out of the table plus AP-STA-DISCONNECTED."""
        self.stations.pop(mac, None)
        await self.emit(f"<{MSG_INFO}>AP-STA-DISCONNECTED {mac}".encode())

    async def emit(self, datagram: bytes) -> None:
        """Send `datagram` to every attached client; like hostapd, drop a client whose
        socket is gone (ENOENT) or refuses."""
        if self._sock is None:
            return
        for client in sorted(self.attached):
            try:
                self._sock.sendto(datagram, client)
            except OSError:
                self.attached.discard(client)

    async def _serve(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data, client = await loop.sock_recvfrom(sock, 4096)
            command = data.decode(errors="replace")
            self.commands.append(command)
            if self.before_reply is not None:
                self.before_reply(command)
            if self.silent:
                continue
            reply = self._answer(command, client)
            with contextlib.suppress(OSError):  # the client went away meanwhile
                sock.sendto(reply, client)

    def _answer(self, command: str, client: str) -> bytes:
        # As hostapd_ctrl_iface_receive_process; an empty reply is sent as it is.
        verb, _, argument = command.partition(" ")
        match verb:
            case "PING":
                return b"PONG\n"
            case "ATTACH":
                self.attached.add(client)
                self.attaches += 1
                return b"OK\n"
            case "DETACH" if client in self.attached:
                self.attached.discard(client)
                return b"OK\n"
            case "STA-FIRST" | "STA-NEXT" | "STA":
                return self._station_reply(verb, argument.lower())
            case _:
                return b"FAIL\n" if verb == "DETACH" else b"UNKNOWN COMMAND\n"

    def _station_reply(self, verb: str, mac: str) -> bytes:
        # ctrl_iface_ap.c: STA-FIRST with no station and STA-NEXT of the last one answer an
        # empty datagram; STA of an unknown MAC and STA-NEXT of one answer FAIL.
        macs = list(self.stations)
        if verb == "STA-FIRST":
            return self.stations[macs[0]].mib() if macs else b""
        if mac not in self.stations:
            return b"FAIL\n"
        if verb == "STA":
            return self.stations[mac].mib()
        after = macs.index(mac) + 1
        return self.stations[macs[after]].mib() if after < len(macs) else b""
