"""Merging discovery clues into one view per MAC, and deciding when to ask a device who it is.

Every source (station events, DHCP leases, mDNS, ARP) reports clues about devices; none is
trusted to be complete. A device is probed (its /v1/info asked for) once it is present and
its address is known, again when it comes back after leaving, when its address changes and
when it advertises a new state; otherwise further clues only confirm what is known.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import msgspec

from orchestrator.domain.mac import Mac


class SourceKind(enum.StrEnum):
    """Where a clue came from."""

    STATION = "station"
    """The access point's station events (hostapd; the test bed's bridge)."""
    LEASE = "lease"
    """dnsmasq: its lease file and its `--dhcp-script` hook."""
    MDNS = "mdns"
    """The devices' `_delicasa._tcp` adverts."""
    ARP = "arp"
    """An ARP sweep of the onboarding subnet."""


NOTHING_TO_ASK = frozenset({"provisioned"})
"""Advertised states a probe would learn nothing from: a device that took its credentials is
leaving for the target network (the engine has its receipt). Asking anyway costs a request
per device in every batch. (The protocol's DeviceState.PROVISIONED value.)"""


class Clue(msgspec.Struct, frozen=True, kw_only=True):
    """One observation of one device by one source."""

    mac: Mac
    source: SourceKind
    ip: str | None = None
    """Its onboarding address, when the source knows it (station events do not)."""
    present: bool = True
    """False: the source saw the device leave (disassociated, lease released, goodbye)."""
    rssi: int | None = None
    state: str | None = None
    """The device state it advertises (mDNS TXT), when the source carries one."""


class Probe(msgspec.Struct, frozen=True, kw_only=True):
    """Ask the device at `ip` who it is."""

    mac: Mac
    ip: str


class Left(msgspec.Struct, frozen=True, kw_only=True):
    """The device left the onboarding network."""

    mac: Mac


Action = Probe | Left


@dataclass(slots=True)
class _Device:
    ip: str | None = None
    present: bool = True
    state: str | None = None
    rssi: int | None = None
    probing: bool = False
    probed_ip: str | None = None
    """The address its info was last read from; None until then and after it leaves."""
    sources: set[SourceKind] = field(default_factory=set)


class DiscoveryTable:
    """What discovery knows about each MAC; feed it clues and probe results."""

    def __init__(self) -> None:
        self._devices: dict[Mac, _Device] = {}

    def __contains__(self, mac: Mac) -> bool:
        return mac in self._devices

    def sources(self, mac: Mac) -> frozenset[SourceKind]:
        """Every source that has seen `mac`."""
        device = self._devices.get(mac)
        return frozenset(device.sources) if device else frozenset()

    def rssi(self, mac: Mac) -> int | None:
        """The latest signal an access point reported for `mac`."""
        device = self._devices.get(mac)
        return device.rssi if device else None

    def present(self) -> list[Mac]:
        """The MACs present now."""
        return [mac for mac, device in self._devices.items() if device.present]

    def clue(self, clue: Clue) -> list[Action]:
        """Take one clue in; what to do about it."""
        device = self._devices.get(clue.mac)
        if not clue.present:
            if device is None or not device.present:
                return []
            device.present = False
            device.probed_ip = None
            return [Left(mac=clue.mac)]
        if device is None:
            device = self._devices[clue.mac] = _Device()
        returned = not device.present
        device.present = True
        device.sources.add(clue.source)
        if clue.ip is not None:
            device.ip = clue.ip
        if clue.rssi is not None:
            device.rssi = clue.rssi
        new_state = clue.state is not None and clue.state != device.state
        if clue.state is not None:
            device.state = clue.state
        if returned or (new_state and clue.state not in NOTHING_TO_ASK):
            device.probed_ip = None
        return self._probe_if_due(clue.mac, device)

    def probed(self, mac: Mac, ip: str, *, state: str) -> list[Action]:
        """A probe of `mac` at `ip` answered with `state`."""
        device = self._devices[mac]
        device.probing = False
        device.probed_ip = ip
        device.state = state
        return self._probe_if_due(mac, device)

    def probe_failed(self, mac: Mac) -> None:
        """A probe of `mac` got no answer; `retry` asks again later."""
        self._devices[mac].probing = False

    def retry(self, mac: Mac) -> list[Action]:
        """Probe again if the device is still present and still unknown."""
        device = self._devices.get(mac)
        return self._probe_if_due(mac, device) if device else []

    def _probe_if_due(self, mac: Mac, device: _Device) -> list[Action]:
        if (
            not device.present
            or device.probing
            or device.ip is None
            or device.probed_ip == device.ip
        ):
            return []
        device.probing = True
        return [Probe(mac=mac, ip=device.ip)]
