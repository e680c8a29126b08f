"""Namespaces, bridges and veths of one test bed, built with `ip -batch` and removed again.

Only namespace names are global (`/run/netns`), so each carries the bed's random run id:
parallel beds and leftovers of a crashed run never clash. Bridges and veths live inside the
bed's own namespaces and vanish with them; nothing is added to the caller's namespace.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import secrets
import socket
import struct
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

from orchestrator.sim.process import run_command
from orchestrator.sim.setns import (
    NETNS_DIR,
    namespace_path,
    run_in_each_namespace,
    run_in_namespace,
)

log = logging.getLogger(__name__)

NAME_PREFIX = "tb-"
ONBOARDING_NET = IPv4Network("10.42.0.0/16")
TARGET_NET = IPv4Network("10.43.0.0/16")
# A bridge takes at most 1023 ports; the target bridge also holds the broker's.
MAX_DEVICES = 1000
ONBOARDING_BRIDGE = "br-onb"
TARGET_BRIDGE = "br-tgt"
DEVICE_ONBOARDING_IF = "onb0"
DEVICE_TARGET_IF = "tgt0"
BROKER_IF = "eth0"
# Device addresses start past the first /24, which holds the fixed hosts (pi, broker).
_HOST_OFFSET = 256

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_IFREQ = struct.Struct("16sH22x")


@dataclass(frozen=True, slots=True)
class Layout:
    """Names and addresses of one bed: a "pi" namespace with the onboarding and target
    bridges, a broker namespace on the target bridge, and one namespace per device."""

    run_id: str
    devices: int

    @classmethod
    def new(cls, devices: int) -> Layout:
        """A layout for `devices` devices under a fresh run id."""
        if not 1 <= devices <= MAX_DEVICES:
            raise ValueError(f"devices must be 1..{MAX_DEVICES}, not {devices}")
        return cls(run_id=secrets.token_hex(3), devices=devices)

    @property
    def pi(self) -> str:
        """The namespace standing in for the Raspberry Pi (both bridges, dnsmasq)."""
        return f"{NAME_PREFIX}{self.run_id}-pi"

    @property
    def broker(self) -> str:
        """The namespace of the target network's MQTT broker."""
        return f"{NAME_PREFIX}{self.run_id}-mq"

    def device(self, index: int) -> str:
        """The namespace of device `index`."""
        return f"{NAME_PREFIX}{self.run_id}-d{index}"

    @property
    def namespaces(self) -> tuple[str, ...]:
        """Every namespace of the bed, pi first."""
        return (self.pi, self.broker, *(self.device(i) for i in range(self.devices)))

    def mac(self, index: int) -> str:
        """Device `index`'s MAC: locally administered, run id in the middle, index last (a
        factory batch is sequential too)."""
        run = self.run_id
        return f"02:{run[0:2]}:{run[2:4]}:{run[4:6]}:{index >> 8:02x}:{index & 0xFF:02x}"

    @property
    def pi_onboarding(self) -> IPv4Interface:
        """The Pi's address on the onboarding bridge (the access point's)."""
        return IPv4Interface(f"{ONBOARDING_NET[1]}/{ONBOARDING_NET.prefixlen}")

    @property
    def pi_target(self) -> IPv4Interface:
        """The Pi's uplink address on the target network."""
        return IPv4Interface(f"{TARGET_NET[1]}/{TARGET_NET.prefixlen}")

    @property
    def broker_address(self) -> IPv4Interface:
        """The broker's address on the target network."""
        return IPv4Interface(f"{TARGET_NET[2]}/{TARGET_NET.prefixlen}")

    def target_address(self, index: int) -> IPv4Interface:
        """Device `index`'s static address once switched to the target network."""
        return IPv4Interface(f"{TARGET_NET[_HOST_OFFSET + 1 + index]}/{TARGET_NET.prefixlen}")

    @property
    def dhcp_pool_start(self) -> IPv4Address:
        """The first address of the onboarding DHCP pool."""
        return ONBOARDING_NET[_HOST_OFFSET + 1]

    @property
    def dhcp_pool_limit(self) -> int:
        """How many addresses the pool may span."""
        return ONBOARDING_NET.num_addresses - _HOST_OFFSET - 2


async def ip_batch(commands: Iterable[str], *, namespace: str | None = None) -> None:
    """Run `ip` commands in one process (one process per step is 10-40x slower)."""
    argv = ["ip", *(("-n", namespace) if namespace else ()), "-batch", "-"]
    await run_command(argv, stdin="".join(f"{c}\n" for c in commands).encode())


async def interface_addresses(namespace: str) -> dict[str, list[IPv4Interface]]:
    """The IPv4 addresses of every interface in `namespace`, by interface name."""
    out = await run_command(["ip", "-j", "-n", namespace, "addr", "show"])
    return {
        link["ifname"]: [
            IPv4Interface(f"{a['local']}/{a['prefixlen']}")
            for a in link.get("addr_info", [])
            if a.get("family") == "inet"
        ]
        for link in json.loads(out)
    }


@contextlib.asynccontextmanager
async def network(layout: Layout) -> AsyncIterator[Layout]:
    """Create the bed's namespaces and links; delete exactly those namespaces on exit."""
    try:
        await ip_batch(f"netns add {name}" for name in layout.namespaces)
        await run_in_namespace(layout.pi, _write_sysctls, _PI_SYSCTLS)
        await run_in_each_namespace(layout.namespaces[1:], _write_sysctls, _HOST_SYSCTLS)
        await ip_batch(_pi_commands(layout), namespace=layout.pi)
        await ip_batch(
            [
                f"addr add {layout.broker_address} dev {BROKER_IF}",
                f"link set {BROKER_IF} up",
                "link set lo up",
            ],
            namespace=layout.broker,
        )
        devices = [layout.device(i) for i in range(layout.devices)]
        await run_in_each_namespace(devices, set_links_up, ("lo", DEVICE_ONBOARDING_IF))
        yield layout
    finally:
        await remove_namespaces(layout.namespaces)


async def remove_namespaces(names: Sequence[str]) -> None:
    """Delete those of `names` that exist; deleting the pi namespace destroys every veth."""
    existing = [n for n in names if namespace_path(n).exists()]
    if existing:
        await run_command(["ip", "-force", "-batch", "-"], stdin=_lines(existing))
        log.debug("removed %d namespaces", len(existing))


def bed_namespaces() -> dict[str, list[str]]:
    """Every bed's namespaces on this host, by run id."""
    beds: dict[str, list[str]] = {}
    names = [p.name for p in NETNS_DIR.iterdir()] if NETNS_DIR.exists() else []
    for name in names:
        if name.startswith(NAME_PREFIX) and name.count("-") >= 2:
            beds.setdefault(name.split("-")[1], []).append(name)
    return beds


def _lines(names: Sequence[str]) -> bytes:
    return "".join(f"netns del {n}\n" for n in names).encode()


# The ARP and multicast traffic of hundreds of devices is what overflows the kernel's queues;
# IPv6 would triple it (router solicitations, DAD, MLD) and nothing here uses it.
_HOST_SYSCTLS = {"net/ipv6/conf/all/disable_ipv6": "1", "net/ipv6/conf/default/disable_ipv6": "1"}
# A new namespace inherits the host's forwarding setting; the Pi must not route the onboarding
# network onto the target one.
_PI_SYSCTLS = {**_HOST_SYSCTLS, "net/ipv4/ip_forward": "0"}


def _write_sysctls(values: dict[str, str]) -> None:
    # /proc/sys/net follows the calling thread's namespace.
    for key, value in values.items():
        Path("/proc/sys", key).write_text(value, encoding="ascii")


def _pi_commands(layout: Layout) -> list[str]:
    commands = ["link set lo up"]
    for bridge, address in (
        (ONBOARDING_BRIDGE, layout.pi_onboarding),
        (TARGET_BRIDGE, layout.pi_target),
    ):
        commands += [
            f"link add {bridge} type bridge",
            f"addr add {address} dev {bridge}",
            f"link set {bridge} up",
        ]
    for i in range(layout.devices):
        device, mac = layout.device(i), layout.mac(i)
        # Both device-side links carry the same MAC, as one Wi-Fi radio would; the target
        # link stays down until the device switches networks.
        commands += [
            f"link add o{i} master {ONBOARDING_BRIDGE} up type veth"
            f" peer name {DEVICE_ONBOARDING_IF} netns {device} address {mac}",
            f"link add t{i} master {TARGET_BRIDGE} up type veth"
            f" peer name {DEVICE_TARGET_IF} netns {device} address {mac}",
        ]
    commands.append(
        f"link add t-mq master {TARGET_BRIDGE} up type veth"
        f" peer name {BROKER_IF} netns {layout.broker}"
    )
    return commands


def set_links_up(links: Iterable[str]) -> None:
    """Bring `links` of the calling thread's namespace up (ioctl: no process per device)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for link in links:
            request = _IFREQ.pack(link.encode(), 0)
            _, flags = _IFREQ.unpack(fcntl.ioctl(sock, _SIOCGIFFLAGS, request))
            fcntl.ioctl(sock, _SIOCSIFFLAGS, _IFREQ.pack(link.encode(), flags | _IFF_UP))
