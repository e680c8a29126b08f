"""mDNS advertising for reference and simulated devices: one responder, many devices.

The only module of the device side that imports zeroconf. One `AsyncZeroconf`, bound to the
given IPv4 addresses, answers for every device registered with it; each device gets its own
instance name and host name derived from its MAC (`dc-aabbccddeeff`) and the TXT record of
`orchestrator.protocol.advert`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from typing import Self

from zeroconf import Error as ZeroconfError
from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from orchestrator.device.errors import AgentError
from orchestrator.domain.errors import OrchestratorError
from orchestrator.domain.mac import Mac, is_mac, parse_mac
from orchestrator.protocol.advert import SERVICE_TYPE, txt_record
from orchestrator.protocol.messages import DeviceInfo

log = logging.getLogger(__name__)

INSTANCE_PREFIX = "dc-"
DRAIN_TIMEOUT_S = 1.0
"""How long closing waits for goodbyes already on their way (three packets, 125 ms apart)."""


class MdnsError(AgentError):
    """The responder could not start, or a registration was refused (the message says why)."""


def instance_name(mac: str) -> str:
    """The instance label of a device: `dc-` and its MAC in lower-case hex."""
    return INSTANCE_PREFIX + _canonical(mac).replace(":", "").lower()


def service_name(mac: str, service_type: str = SERVICE_TYPE) -> str:
    """The full service instance name, e.g. `dc-aabbccddeeff._delicasa._tcp.local.`."""
    return f"{instance_name(mac)}.{service_type}"


@dataclass(slots=True)
class _Registration:
    info: AsyncServiceInfo
    announcing: asyncio.Future[None] | None


class DeviceAdvertiser:
    """Advertises many devices from one responder. Open it with `DeviceAdvertiser.start`.

    `register`, `update` and `unregister` return as soon as the responder answers with the new
    records and the first announcement is under way; the remaining repeats of the announcement
    (RFC 6762 section 8.3) run on, owned by the advertiser: a newer change of the same device
    supersedes them, and closing drains or cancels them.
    """

    def __init__(self, zeroconf: AsyncZeroconf, service_type: str) -> None:
        self._zeroconf = zeroconf
        self._service_type = service_type
        self._devices: dict[Mac, _Registration] = {}
        self._goodbyes: set[asyncio.Future[None]] = set()
        # Changes are serialised (each takes well under a millisecond): an unregister must not
        # overtake the register of the same device while zeroconf is adding it.
        self._lock = asyncio.Lock()
        self._closed = False

    @classmethod
    @contextlib.asynccontextmanager
    async def start(
        cls, *, addresses: Sequence[str], service_type: str = SERVICE_TYPE
    ) -> AsyncIterator[Self]:
        """Bind a responder to the IPv4 `addresses` (not interface names) for the lifetime of
        the block; at exit every device still registered says goodbye."""
        if not addresses:
            raise MdnsError("no address to advertise on")
        bind = [_ipv4(address) for address in addresses]
        try:
            for address in bind:
                _check_local(address)
            zeroconf = AsyncZeroconf(interfaces=bind, ip_version=IPVersion.V4Only)
        except (OSError, ZeroconfError) as exc:
            raise MdnsError(f"cannot start an mDNS responder on {', '.join(bind)}: {exc}") from exc
        advertiser = cls(zeroconf, service_type)
        try:
            yield advertiser
        finally:
            await advertiser._close()

    @property
    def service_type(self) -> str:
        """The service type devices are advertised under."""
        return self._service_type

    def __contains__(self, mac: object) -> bool:
        return isinstance(mac, str) and is_mac(mac) and parse_mac(mac) in self._devices

    def __len__(self) -> int:
        return len(self._devices)

    async def register(self, info: DeviceInfo, ip: str, port: int) -> None:
        """Advertise a device reachable at `ip`:`port`, described by `info`."""
        async with self._changing():
            await self._register(info, ip, port)

    async def update(self, info: DeviceInfo) -> None:
        """Announce the device's new TXT record (its state changed)."""
        async with self._changing():
            await self._update(info)

    async def unregister(self, mac: str) -> None:
        """Stop advertising a device and say goodbye (TTL 0) so browsers drop it at once."""
        async with self._changing():
            await self._unregister(mac)

    async def settle(self) -> None:
        """Wait until every announcement and goodbye under way has been sent."""
        pending = {r.announcing for r in self._devices.values() if r.announcing is not None}
        pending |= self._goodbyes
        if pending:
            await asyncio.wait(pending)

    @contextlib.asynccontextmanager
    async def _changing(self) -> AsyncIterator[None]:
        async with self._lock:
            if self._closed:
                raise MdnsError("the advertiser is closed")
            yield

    async def _register(self, info: DeviceInfo, ip: str, port: int) -> None:
        mac = _canonical(info.mac)
        if mac in self._devices:
            raise MdnsError(f"{mac} is already advertised")
        address = _ipv4(ip)
        if not 0 < port < 65_536:
            raise MdnsError(f"{mac}: port {port} is out of range")
        service = self._service_info(info, mac, address, port)
        registration = _Registration(info=service, announcing=None)
        self._devices[mac] = registration
        try:
            # Simulated devices share one responder and never collide, so they skip probing:
            # a probe storm of dozens of devices delays discovery by seconds.
            registration.announcing = _future(
                await self._zeroconf.async_register_service(service, cooperating_responders=True)
            )
        except (OSError, ZeroconfError) as exc:
            del self._devices[mac]
            raise MdnsError(f"{mac}: cannot advertise: {exc}") from exc
        log.debug("advertising %s as %s at %s:%d", mac, service.name, address, port)

    async def _update(self, info: DeviceInfo) -> None:
        mac = _canonical(info.mac)
        registration = self._registration(mac)
        old = registration.info
        port = old.port
        if port is None:  # set by register; zeroconf types it as optional
            raise MdnsError(f"{mac}: advertised without a port")
        service = self._service_info(info, mac, old.parsed_addresses()[0], port)
        await _cancel(registration.announcing)
        registration.info = service
        registration.announcing = None
        try:
            registration.announcing = _future(await self._zeroconf.async_update_service(service))
        except (OSError, ZeroconfError) as exc:
            raise MdnsError(f"{mac}: cannot update the advertisement: {exc}") from exc
        log.debug("advertising %s in state %s", mac, info.state.value)

    async def _unregister(self, mac: str) -> None:
        canonical = _canonical(mac)
        registration = self._registration(canonical)
        del self._devices[canonical]
        await _cancel(registration.announcing)
        try:
            goodbye = _future(await self._zeroconf.async_unregister_service(registration.info))
        except (OSError, ZeroconfError) as exc:
            raise MdnsError(f"{canonical}: cannot withdraw the advertisement: {exc}") from exc
        self._goodbyes.add(goodbye)
        goodbye.add_done_callback(self._goodbyes.discard)
        log.debug("stopped advertising %s", canonical)

    def _registration(self, mac: Mac) -> _Registration:
        registration = self._devices.get(mac)
        if registration is None:
            raise MdnsError(f"{mac} is not advertised")
        return registration

    def _service_info(
        self, info: DeviceInfo, mac: Mac, address: str, port: int
    ) -> AsyncServiceInfo:
        try:
            return AsyncServiceInfo(
                self._service_type,
                service_name(mac, self._service_type),
                port=port,
                properties=dict(txt_record(info)),
                server=f"{instance_name(mac)}.local.",
                parsed_addresses=[address],
            )
        except ZeroconfError as exc:
            raise MdnsError(f"{mac}: bad service type {self._service_type!r}: {exc}") from exc

    async def _close(self) -> None:
        """Cancel pending announcements, let goodbyes finish, then say goodbye for every
        device still registered and release the sockets."""
        async with self._lock:
            self._closed = True
        for registration in self._devices.values():
            await _cancel(registration.announcing)
        self._devices.clear()
        if self._goodbyes:
            await asyncio.wait(self._goodbyes, timeout=DRAIN_TIMEOUT_S)
            for goodbye in list(self._goodbyes):
                await _cancel(goodbye)
            self._goodbyes.clear()
        await self._zeroconf.async_close()


def _canonical(mac: str) -> Mac:
    try:
        return parse_mac(mac)
    except OrchestratorError as exc:
        raise MdnsError(f"not a MAC address: {mac!r}") from exc


def _ipv4(address: str) -> str:
    try:
        return str(ipaddress.IPv4Address(address))
    except ValueError as exc:
        raise MdnsError(f"not an IPv4 address: {address!r}") from exc


def _check_local(address: str) -> None:
    """Raise OSError unless `address` is one of this host's (namespace's) addresses.

    Checked before zeroconf sees the address: zeroconf leaks its listening socket (a
    ResourceWarning) when it cannot join the multicast group there.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((address, 0))


def _future(announcement: Awaitable[None]) -> asyncio.Future[None]:
    """The task zeroconf runs an announcement in (it hands it over as a bare awaitable)."""
    return asyncio.ensure_future(announcement)


async def _cancel(pending: asyncio.Future[None] | None) -> None:
    """Stop an announcement still under way and wait until it has stopped."""
    if pending is None or pending.done():
        return
    pending.cancel()
    # wait() rather than await: our own cancellation must still propagate.
    await asyncio.wait({pending})
