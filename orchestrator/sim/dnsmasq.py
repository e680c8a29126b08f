"""dnsmasq as the onboarding network's DHCP server (no DNS), run in the foreground until the
block ends, and its lease file read back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from orchestrator.sim.process import stop

log = logging.getLogger(__name__)

DNSMASQ = "/usr/sbin/dnsmasq"
START_TIMEOUT_S = 10.0
# Logged once the DHCP socket is open and the range is in place.
_READY_MARKER = "DHCP, IP range"


class DnsmasqError(Exception):
    """dnsmasq is missing or did not start; the message carries its own words."""


@dataclass(frozen=True, slots=True)
class Lease:
    """One line of dnsmasq's lease file."""

    mac: str
    ip: IPv4Address
    hostname: str | None
    expires: int


@dataclass(frozen=True, slots=True)
class Dnsmasq:
    """A running dnsmasq: where its leases are."""

    lease_file: Path

    def leases(self) -> list[Lease]:
        """The current leases (the file is rewritten on every change; a read takes
        microseconds, but it still lists devices that have left)."""
        try:
            text = self.lease_file.read_text(encoding="ascii")
        except FileNotFoundError:
            return []
        return [_lease(line.split()) for line in text.splitlines() if line.strip()]


def _lease(fields: list[str]) -> Lease:
    expires, mac, ip, hostname = fields[:4]
    return Lease(
        mac=mac,
        ip=IPv4Address(ip),
        hostname=None if hostname == "*" else hostname,
        expires=int(expires),
    )


def pool_size(macs: Sequence[str], *, minimum: int, limit: int) -> int:
    """The smallest pool of at least `minimum` addresses in which every MAC of `macs` gets an
    address of its own. dnsmasq offers an address at `sdbm(MAC) mod pool size` (or the next
    free one) and does not reserve it until the REQUEST: two clients in flight whose hashes
    collide are offered the same address, one is NAKed, and udhcpc sleeps 3 s after a NAK.
    Sequential MACs hash to runs that overlap at some sizes (NAK storms from 400 devices
    up); others keep them apart. Should dnsmasq change its hash, this only costs time."""
    hashes = [_sdbm(bytes.fromhex(mac.replace(":", ""))) for mac in macs]
    for size in range(minimum, limit + 1):
        if len({h % size for h in hashes}) == len(hashes):
            return size
    return minimum


def _sdbm(data: bytes) -> int:
    # dnsmasq's address_allocate(): an unsigned int, so modulo 2**32; 0 is its marker for 1.
    value = 0
    for byte in data:
        value = (byte + (value << 6) + (value << 16) - value) & 0xFFFFFFFF
    return value or 1


@dataclass(frozen=True, slots=True, kw_only=True)
class DnsmasqConfig:
    """DHCP only, on one interface only, from an empty configuration."""

    interface: str
    network: IPv4Network
    pool: tuple[IPv4Address, IPv4Address]
    lease_file: Path
    max_leases: int
    dhcp_script: Path | None = None
    lease_time_s: int = 3600

    def argv(self) -> list[str]:
        """The dnsmasq command line."""
        argv = [
            DNSMASQ,
            # Foreground, as the user we are (no switch to `nobody`, who could not write
            # our private lease file; in a user namespace no switch is possible at all), no
            # pid file (several beds run side by side).
            "--no-daemon",
            "--log-facility=-",
            "--conf-file=/dev/null",
            "--port=0",  # no DNS
            "--no-resolv",
            "--no-hosts",
            f"--interface={self.interface}",
            "--bind-interfaces",
            # Without it dnsmasq pings every new address for about 3 s, one client at a time.
            "--no-ping",
            "--dhcp-authoritative",
            f"--dhcp-range={self.pool[0]},{self.pool[1]},{self.network.netmask},"
            f"{self.lease_time_s}",
            # The default of 1000 would cap large beds.
            f"--dhcp-lease-max={self.max_leases}",
            f"--dhcp-leasefile={self.lease_file}",
            # No router and no DNS server: the onboarding network leads nowhere.
            "--dhcp-option=3",
            "--dhcp-option=6",
            "--quiet-dhcp",
        ]
        if self.dhcp_script is not None:
            argv.append(f"--dhcp-script={self.dhcp_script}")
        return argv


@contextlib.asynccontextmanager
async def dnsmasq(config: DnsmasqConfig, *, prefix: Sequence[str] = ()) -> AsyncIterator[Dnsmasq]:
    """Run dnsmasq under `prefix` (e.g. `nsenter --net=...`) until the block ends; it is
    stopped and reaped even when the block raises."""
    if not Path(DNSMASQ).exists():  # noqa: ASYNC240 - one stat
        raise DnsmasqError(f"{DNSMASQ} not found: install the Debian package dnsmasq-base")
    process = await asyncio.create_subprocess_exec(
        *prefix,
        *config.argv(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None  # noqa: S101 - created with stderr=PIPE just above
    try:
        await _wait_until_ready(process.stderr)
        log.debug("dnsmasq serving DHCP on %s, pool %s-%s", config.interface, *config.pool)
        # Keep reading its log so it never blocks on a full pipe. A task of its own rather
        # than a task group, which would wrap whatever the block raises in an ExceptionGroup.
        reader = asyncio.create_task(_drain(process.stderr))
        try:
            yield Dnsmasq(lease_file=config.lease_file)
        finally:
            await stop(process)
            reader.cancel()
            await asyncio.wait([reader])
    finally:
        await stop(process)


async def _wait_until_ready(stderr: asyncio.StreamReader) -> None:
    seen: list[str] = []
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            while line := (await stderr.readline()).decode(errors="replace"):
                seen.append(line.rstrip())
                if _READY_MARKER in line:
                    return
    except TimeoutError:
        pass
    raise DnsmasqError("dnsmasq did not start: " + " | ".join(seen[-5:]))


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass
