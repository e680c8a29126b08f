"""Switching networks: the `NetworkSwitch` port and the in-process world of the loopback tier.

A real Linux device would implement the port with wpa_supplicant or NetworkManager; the
namespace test bed moves a veth. `SimulatedNetworks` keeps everything in memory.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from orchestrator.device.errors import JoinError
from orchestrator.protocol.messages import FailureReason

ONBOARDING_SSID = "DelicasaOnboard"


@dataclass(frozen=True, slots=True)
class Attachment:
    """Where a join landed: the network, the address leased there, and how the broker is
    reached from it (None: at the host and port of the delivered broker URL)."""

    ssid: str
    ip: str
    broker: tuple[str, int] | None = None


class NetworkSwitch(Protocol):
    """Moves one device's radio between the onboarding network and a target network."""

    async def leave_onboarding(self) -> None:
        """Disassociate from the onboarding network."""

    async def join_target(self, ssid: str, password: str) -> Attachment:
        """Associate with `ssid` and take a lease; JoinError says why not."""

    async def return_to_onboarding(self) -> None:
        """Leave any target network and rejoin the onboarding network."""


@dataclass(frozen=True, slots=True)
class TargetNetwork:
    """A Wi-Fi network in the simulated world."""

    ssid: str
    password: str
    broker: tuple[str, int] | None = None
    """Where this network routes MQTT (None: the delivered broker URL is reachable as is)."""
    subnet: str = "10.42.0.0/24"
    """Leases are handed out from here, one stable address per MAC."""


class SimulatedNetworks:
    """An in-memory world of target networks; it knows where every device is."""

    def __init__(
        self, networks: Iterable[TargetNetwork] = (), *, onboarding_ssid: str = ONBOARDING_SSID
    ) -> None:
        self.onboarding_ssid = onboarding_ssid
        self._networks: dict[str, TargetNetwork] = {}
        self._leases: dict[str, dict[str, str]] = {}
        self._where: dict[str, str | None] = {}
        for network in networks:
            self.add(network)

    def add(self, network: TargetNetwork) -> None:
        """Put `network` in range (replacing one with the same SSID)."""
        self._networks[network.ssid] = network
        self._leases.setdefault(network.ssid, {})

    def switch(self, mac: str) -> SimulatedSwitch:
        """The radio of device `mac`, which starts on the onboarding network."""
        self._where[mac] = self.onboarding_ssid
        return SimulatedSwitch(self, mac)

    def location(self, mac: str) -> str | None:
        """The SSID device `mac` is on, or None while it is between networks."""
        return self._where.get(mac)

    def move(self, mac: str, ssid: str | None) -> None:
        """Record that `mac` is now on `ssid` (None: on no network)."""
        self._where[mac] = ssid

    def join(self, mac: str, ssid: str, password: str) -> Attachment:
        """Associate `mac` with `ssid`, as an access point and its DHCP server would."""
        network = self._networks.get(ssid)
        if network is None:
            raise JoinError(FailureReason.NETWORK_NOT_FOUND, f"no access point {ssid!r} in range")
        if password != network.password:
            raise JoinError(FailureReason.AUTH_ERROR, f"{ssid!r} refused the password")
        ip = self._lease(network, mac)
        self._where[mac] = ssid
        return Attachment(ssid=ssid, ip=ip, broker=network.broker)

    def _lease(self, network: TargetNetwork, mac: str) -> str:
        leases = self._leases[network.ssid]
        if mac not in leases:
            hosts = ipaddress.ip_network(network.subnet).hosts()
            taken = set(leases.values())
            free = next((str(ip) for ip in hosts if str(ip) not in taken), None)
            if free is None:
                raise JoinError(FailureReason.DHCP_FAILED, f"{network.ssid!r} has no free lease")
            leases[mac] = free
        return leases[mac]


class SimulatedSwitch:
    """One device's radio in a SimulatedNetworks world."""

    def __init__(self, world: SimulatedNetworks, mac: str) -> None:
        self._world = world
        self._mac = mac

    async def leave_onboarding(self) -> None:
        """Disassociate from the onboarding network."""
        self._world.move(self._mac, None)

    async def join_target(self, ssid: str, password: str) -> Attachment:
        """Associate with `ssid` and take a lease."""
        return self._world.join(self._mac, ssid, password)

    async def return_to_onboarding(self) -> None:
        """Back on the onboarding network."""
        self._world.move(self._mac, self._world.onboarding_ssid)
