"""ARP sweeps of the onboarding network as discovery clues (the one module that uses scapy).

A sweep asks every address of the DHCP pool (not the whole subnet: a /16 is 65,534 questions)
who has it, and a device answers whether or not it advertises anything. scapy is imported
lazily inside the sweep, and only its layer-2 parts (`scapy.all` costs about 1 s and 72 MB);
its send-and-receive blocks, so each sweep runs in a worker thread. Raw sockets need
CAP_NET_RAW, and nothing more.

The sweep's frames carry the interface's own addresses, read from the kernel by the sweeping
thread: scapy's routing and interface tables are loaded once per process, in whatever
network namespace imported it first.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import ipaddress
import logging
import socket
import struct
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from ipaddress import IPv4Address

from orchestrator.domain.discovery import Clue, SourceKind
from orchestrator.domain.mac import Mac, is_mac, parse_mac
from orchestrator.ports.discovery import SourceUnavailableError

log = logging.getLogger(__name__)

BROADCAST = "ff:ff:ff:ff:ff:ff"
_SIOCGIFADDR = 0x8915
_SIOCGIFHWADDR = 0x8927
_IFREQ = struct.Struct("16s16x")

Sweep = Callable[[str, Sequence[str], float], dict[Mac, str]]
"""Blocking: (interface, addresses, timeout_s) -> the IPv4 address each answering MAC claims;
SourceUnavailableError when it cannot sweep at all."""


def address_range(first: IPv4Address | str, last: IPv4Address | str) -> list[IPv4Address]:
    """Every address from `first` to `last` inclusive (a dnsmasq `--dhcp-range`)."""
    start, end = int(IPv4Address(first)), int(IPv4Address(last))
    if end < start:
        raise ValueError(f"empty address range {first} - {last}")
    return [IPv4Address(value) for value in range(start, end + 1)]


class ArpPresence:
    """Sweep results as clues: each answer is a sighting; a device that answered before and
    then misses `misses` sweeps in a row has left (one lost answer is not a departure)."""

    def __init__(self, misses: int = 2) -> None:
        if misses < 1:
            raise ValueError("misses must be at least 1")
        self._misses = misses
        self._silent: dict[Mac, int] = {}
        """Devices that answered, by how many sweeps they have missed since."""
        self._ips: dict[Mac, str] = {}

    def sweep(self, answers: Mapping[Mac, str]) -> list[Clue]:
        """Take one sweep's answers (MAC -> address); the clues it gives."""
        clues = [Clue(mac=mac, source=SourceKind.ARP, ip=ip) for mac, ip in answers.items()]
        for mac in self._silent.keys() - answers.keys():
            self._silent[mac] += 1
            if self._silent[mac] >= self._misses:
                del self._silent[mac]
                ip = self._ips.pop(mac)
                clues.append(Clue(mac=mac, source=SourceKind.ARP, ip=ip, present=False))
        for mac, ip in answers.items():
            self._silent[mac] = 0
            self._ips[mac] = ip
        return clues


def arp_sweep(interface: str, addresses: Sequence[str], timeout_s: float) -> dict[Mac, str]:
    """Ask `addresses` on `interface` who has them, waiting up to `timeout_s` for answers.
    Blocking; SourceUnavailableError without CAP_NET_RAW, the interface or its IPv4 address."""
    source_ip, source_mac = _interface_addresses(interface)
    try:
        # Lazy: scapy's layer-2 modules cost about 0.2 s and 42 MB.
        from scapy.config import conf  # noqa: PLC0415
        from scapy.layers.l2 import ARP, Ether  # noqa: PLC0415
        from scapy.sendrecv import srp  # noqa: PLC0415
    except ImportError as exc:
        raise SourceUnavailableError(f"ARP sweeps need scapy: {exc}") from exc
    conf.verb = 0
    request = Ether(src=source_mac, dst=BROADCAST) / ARP(
        hwsrc=source_mac, psrc=source_ip, pdst=list(addresses)
    )
    try:
        answered, _ = srp(request, iface=interface, timeout=timeout_s, verbose=False)
    except PermissionError as exc:
        raise SourceUnavailableError(f"ARP sweeps need CAP_NET_RAW: {exc}") from exc
    found: dict[Mac, str] = {}
    for _, reply in answered:
        claim = reply[ARP]
        if is_mac(str(claim.hwsrc)):
            found[parse_mac(str(claim.hwsrc))] = str(claim.psrc)
    return found


def _interface_addresses(interface: str) -> tuple[str, str]:
    """The IPv4 and MAC address of `interface` in the calling thread's namespace."""
    request = _IFREQ.pack(interface.encode()[:15])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            ip = socket.inet_ntoa(fcntl.ioctl(sock, _SIOCGIFADDR, request)[20:24])
            mac = fcntl.ioctl(sock, _SIOCGIFHWADDR, request)[18:24].hex(":")
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                raise SourceUnavailableError(f"no interface {interface!r} to sweep") from exc
            if exc.errno == errno.EADDRNOTAVAIL:
                message = f"{interface} has no IPv4 address to sweep from"
                raise SourceUnavailableError(message) from exc
            raise SourceUnavailableError(f"cannot read {interface}'s addresses: {exc}") from exc
    return ip, mac


class ArpSource:
    """ClueSource sweeping `addresses` (the DHCP pool) on `interface`, waiting `interval_s`
    between sweeps and `timeout_s` for answers in each."""

    kind = SourceKind.ARP

    def __init__(
        self,
        interface: str,
        addresses: Iterable[IPv4Address | str],
        *,
        interval_s: float = 5.0,
        timeout_s: float = 1.0,
        misses: int = 2,
        sweep: Sweep = arp_sweep,
    ) -> None:
        if not 0 < len(interface) < 16:
            raise ValueError(f"not an interface name: {interface!r}")
        self._interface = interface
        self._addresses = [str(ipaddress.IPv4Address(a)) for a in addresses]
        if not self._addresses:
            raise ValueError("no addresses to sweep")
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._misses = misses
        self._sweep = sweep

    async def clues(self) -> AsyncIterator[Clue]:
        """A clue per answer of every sweep, and one when a device stops answering.
        SourceUnavailableError when sweeping is impossible here."""
        presence = ArpPresence(self._misses)
        first = True
        while True:
            answers = await asyncio.to_thread(
                self._sweep, self._interface, self._addresses, self._timeout_s
            )
            if first:
                first = False
                log.info("ARP sweep of %d addresses on %s: %d answered",
                         len(self._addresses), self._interface, len(answers))  # fmt: skip
            for clue in presence.sweep(answers):
                yield clue
            await asyncio.sleep(self._interval_s)
