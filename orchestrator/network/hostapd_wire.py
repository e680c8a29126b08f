"""hostapd's control-interface wire format: the commands we send and what its replies and
events mean. Pure text handling, no sockets (those are in `hostapd.py`).

Taken from hostapd's source: hostapd/ctrl_iface.c (commands, `FAIL`, events prefixed with
`<level>`), src/ap/ctrl_iface_ap.c (`hostapd_ctrl_iface_sta_mib`, the STA reply) and
src/common/wpa_ctrl.c (a datagram starting with `<` is an event, anything else a reply).
"""

from __future__ import annotations

import re

import msgspec

from orchestrator.domain.errors import OrchestratorError
from orchestrator.domain.mac import Mac, parse_mac

PING = "PING"
ATTACH = "ATTACH"
DETACH = "DETACH"
STA_FIRST = "STA-FIRST"

PONG = b"PONG\n"
OK = b"OK\n"
FAIL = b"FAIL\n"
"""`STA` of an unknown MAC; `STA-NEXT` of a MAC that is no longer associated."""
END_OF_LIST = b""
"""`STA-FIRST` with no station, `STA-NEXT` of the last one: hostapd sends an empty datagram."""

MAX_DATAGRAM = 8192
"""hostapd builds replies in a 4096-byte buffer; events are shorter."""

_EVENT_RE = re.compile(r"<(?P<level>\d+)>(?P<name>\S+)(?: (?P<args>.*))?", re.DOTALL)
_JOINED = "AP-STA-CONNECTED"
_LEFT = "AP-STA-DISCONNECTED"


class WireError(ValueError):
    """A datagram that does not have the shape hostapd gives it."""


class StationJoined(msgspec.Struct, frozen=True, kw_only=True):
    """`AP-STA-CONNECTED`: a station finished associating (and the 4-way handshake, if any)."""

    mac: Mac


class StationLeft(msgspec.Struct, frozen=True, kw_only=True):
    """`AP-STA-DISCONNECTED`: a station left or was dropped."""

    mac: Mac


StationEvent = StationJoined | StationLeft


class StationInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What a STA / STA-FIRST / STA-NEXT reply tells us about one station."""

    mac: Mac
    authorized: bool
    """`[AUTHORIZED]` in its flags: the moment hostapd sends AP-STA-CONNECTED. Stations still
    authenticating (or failing to: a wrong PSK) are listed too, without it."""
    signal_dbm: int | None


def sta(mac: Mac) -> str:
    """The command that reads one station."""
    return f"STA {mac.lower()}"


def sta_next(mac: Mac) -> str:
    """The command that reads the station listed after `mac`."""
    return f"STA-NEXT {mac.lower()}"


def is_event(datagram: bytes) -> bool:
    """Whether `datagram` is an unsolicited event rather than the reply to a command."""
    return datagram.startswith(b"<")


def parse_event(datagram: bytes) -> StationEvent | None:
    """The station event in `<level>AP-STA-CONNECTED <mac> [key=value ...]` (or
    DISCONNECTED), None for every other event; WireError when it is not an event at all or
    a station event has no valid MAC."""
    match = _EVENT_RE.fullmatch(datagram.decode("utf-8", errors="replace").rstrip("\n"))
    if match is None:
        raise WireError(f"not an event: {datagram[:80]!r}")
    name = match["name"]
    if name not in (_JOINED, _LEFT):
        return None
    # Extra words follow the MAC: p2p_dev_addr=, ip_addr=, keyid=, auth_alg=, vlan_id=, ...
    words = (match["args"] or "").split()
    mac = _mac(words[0] if words else "", datagram)
    return StationJoined(mac=mac) if name == _JOINED else StationLeft(mac=mac)


def parse_station(reply: bytes) -> StationInfo:
    """A station's MIB: its MAC on the first line, then `key=value` lines (flags, aid, ...,
    signal, connected_time, ...). Check for FAIL and END_OF_LIST first: those are not
    stations. WireError when the first line is not a MAC."""
    first, *lines = reply.decode("utf-8", errors="replace").splitlines() or [""]
    fields = dict(line.partition("=")[::2] for line in lines if "=" in line)
    return StationInfo(
        mac=_mac(first, reply),
        authorized="[AUTHORIZED]" in fields.get("flags", ""),
        signal_dbm=_signal(fields.get("signal")),
    )


def _mac(text: str, datagram: bytes) -> Mac:
    try:
        return parse_mac(text)
    except OrchestratorError as exc:
        raise WireError(f"no station MAC in {datagram[:80]!r}") from exc


def _signal(text: str | None) -> int | None:
    try:
        value = int(text) if text is not None else 0
    except ValueError:
        return None
    # hostapd prints the driver's station data, zero-filled where the driver reported no
    # signal: 0 dBm means "unknown" (no Wi-Fi station is heard that loud).
    return value or None
