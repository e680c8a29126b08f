"""The devices' mDNS adverts as discovery clues (the orchestrator's one zeroconf module).

zeroconf is pinned to the onboarding side's IPv4 address only: on every interface, with IPv6,
it joins every bridge port and finds only a few devices. A browser asking QM questions reports
each service; it is read from zeroconf's cache, where the answer to the browse question has
already put its SRV, TXT and A records (asking every device at once instead would make the
responders hold their answers back for a second, RFC 6762 section 14). A service still
incomplete after `resolve_delay_s` is asked for directly. The browser stops querying on its
own after about 14 s; we ask again every `requery_interval_s`, with the services already known
listed as known answers so only new ones reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass

from zeroconf import (
    DNSQuestionType,
    IPVersion,
    RecordUpdate,
    RecordUpdateListener,
    ServiceStateChange,
    Zeroconf,
    current_time_millis,
)
from zeroconf import Error as ZeroconfError
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from orchestrator.domain.discovery import Clue, SourceKind
from orchestrator.domain.errors import OrchestratorError
from orchestrator.domain.mac import Mac, parse_mac
from orchestrator.ports.discovery import SourceUnavailableError
from orchestrator.protocol.advert import SERVICE_TYPE, AdvertError, parse_txt

log = logging.getLogger(__name__)

START_TIMEOUT_S = 5.0
RESOLVE_TIMEOUT_MS = 3000


@dataclass(frozen=True, slots=True)
class _Seen:
    mac: Mac
    ip: str
    state: str


class _Services(RecordUpdateListener):
    """What the browser reports, turned into clues: the latest clue per MAC waits in `ready`
    (so nothing piles up behind a slow consumer) until taken."""

    def __init__(self, zeroconf: Zeroconf, service_type: str) -> None:
        super().__init__()
        self._zeroconf = zeroconf
        self._service_type = service_type
        self._seen: dict[str, _Seen] = {}
        self.pending: dict[str, float] = {}
        """Services reported but not complete in the cache yet, with when they were."""
        self._server: dict[str, str] = {}
        """Pending services whose SRV record is in: the host name whose address they need."""
        self._touched: set[str] = set()
        """Record names (lower case) of the packet being processed."""
        self.ready: dict[Mac, Clue] = {}
        self.wakeup = asyncio.Event()
        """Set when clues are ready or a service starts pending."""

    def take(self) -> list[Clue]:
        """The clues waiting, oldest first."""
        clues = list(self.ready.values())
        self.ready.clear()
        self.wakeup.clear()
        return clues

    def on_change(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        """The browser's handler: a service was added, updated or removed."""
        if state_change is ServiceStateChange.Removed:
            self.pending.pop(name, None)
            self._server.pop(name, None)
            if seen := self._seen.pop(name, None):
                self._put(Clue(mac=seen.mac, source=SourceKind.MDNS, ip=seen.ip, present=False))
            return
        if name not in self.pending:
            self.pending[name] = asyncio.get_running_loop().time()
            self.wakeup.set()  # to ask for it directly should the cache not complete it
        self.resolve([name])

    def async_update_records(self, zc: Zeroconf, now: float, records: list[RecordUpdate]) -> None:
        """Note which names the packet touches; services are read once it is all in."""
        self._touched.update(update.new.name.lower() for update in records)

    def async_update_records_complete(self) -> None:
        """A packet's records are all in the cache: complete the services it touched (a
        service's own records, or the address of the host it names). Reading only those
        keeps a packet's cost flat however many services wait: reading them all made
        discovery quadratic in the fleet (6 s of CPU for 1000 devices)."""
        touched, self._touched = self._touched, set()
        self.resolve(
            name
            for name in self.pending
            if name.lower() in touched or self._server.get(name) in touched
        )

    def resolve(self, names: Iterable[str] | None = None) -> None:
        """Read pending services (`names`, or all) from the cache; complete ones become
        clues."""
        for name in list(self.pending if names is None else names):
            if name not in self.pending:
                continue
            info = AsyncServiceInfo(self._service_type, name)
            if info.load_from_cache(self._zeroconf):
                self.take_info(name, info)
            elif info.server:
                self._server[name] = info.server.lower()

    def take_info(self, name: str, info: AsyncServiceInfo) -> None:
        """A complete service: a clue when it is a device of ours and something changed."""
        self.pending.pop(name, None)
        self._server.pop(name, None)
        addresses = info.parsed_addresses(IPVersion.V4Only)
        if not addresses:
            # IPv6 only so far; an A record arriving later reports the service again.
            log.debug("mDNS service %s has no IPv4 address", name)
            return
        try:
            advert = parse_txt(info.properties)
            mac = parse_mac(advert.mac)
        except (AdvertError, OrchestratorError) as exc:
            log.debug("mDNS service %s is not a device of ours: %s", name, exc)
            return
        seen = _Seen(mac=mac, ip=addresses[0], state=advert.state.value)
        if self._seen.get(name) != seen:
            self._seen[name] = seen
            self._put(Clue(mac=mac, source=SourceKind.MDNS, ip=seen.ip, state=seen.state))

    def _put(self, clue: Clue) -> None:
        self.ready.pop(clue.mac, None)  # re-inserted last: the order stays the order of events
        self.ready[clue.mac] = clue
        self.wakeup.set()


class MdnsSource:
    """ClueSource over the mDNS adverts of `service_type` seen on the onboarding network,
    whose IPv4 address (not interface name) on this host is `address`."""

    kind = SourceKind.MDNS

    def __init__(
        self,
        address: str,
        *,
        service_type: str = SERVICE_TYPE,
        requery_interval_s: float = 10.0,
        resolve_delay_s: float = 1.0,
    ) -> None:
        self._address = address
        self._service_type = service_type
        self._requery_interval_s = requery_interval_s
        self._resolve_delay_s = resolve_delay_s

    async def clues(self) -> AsyncIterator[Clue]:
        """A clue per device found, changed (address, advertised state) or gone (goodbye),
        until the caller stops iterating. SourceUnavailableError when the address is not
        configured here or multicast cannot be sent from it."""
        address = _local_ipv4(self._address)
        try:
            aiozc = AsyncZeroconf(interfaces=[address], ip_version=IPVersion.V4Only)
        except (OSError, ZeroconfError) as exc:
            raise SourceUnavailableError(f"cannot start mDNS on {address}: {exc}") from exc
        zeroconf = aiozc.zeroconf
        services = _Services(zeroconf, self._service_type)
        browser: AsyncServiceBrowser | None = None
        asking: dict[str, asyncio.Task[None]] = {}
        try:
            try:
                await zeroconf.async_wait_for_start(timeout=START_TIMEOUT_S)
            except ZeroconfError as exc:
                raise SourceUnavailableError(f"mDNS did not start on {address}: {exc}") from exc
            if not zeroconf.engine.senders:
                raise SourceUnavailableError(f"cannot join the mDNS multicast group on {address}")
            zeroconf.async_add_listener(services, None)
            browser = AsyncServiceBrowser(
                zeroconf,
                self._service_type,
                handlers=[services.on_change],
                question_type=DNSQuestionType.QM,
            )
            log.info("browsing %s on %s", self._service_type, address)
            loop = asyncio.get_running_loop()
            next_query = loop.time() + self._requery_interval_s
            while True:
                for clue in services.take():
                    yield clue
                now = loop.time()
                if now >= next_query:
                    next_query = now + self._requery_interval_s
                    browser.query_scheduler.async_send_ready_queries(
                        False,  # noqa: FBT003 - zeroconf's signature; False: ask QM, with known answers
                        current_time_millis(),
                        {self._service_type},
                    )
                for name in self._overdue(services, asking, now):
                    task = asyncio.create_task(
                        _request(zeroconf, self._service_type, name, services)
                    )
                    asking[name] = task
                    task.add_done_callback(functools.partial(_forget, asking, name))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._next_wake(services, asking, next_query) - now):
                        await services.wakeup.wait()
        finally:
            tasks = list(asking.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if browser is not None:
                await browser.async_cancel()
                zeroconf.async_remove_listener(services)
            await aiozc.async_close()

    def _overdue(self, services: _Services, asking: Mapping[str, object], now: float) -> list[str]:
        """Pending services to ask for directly now."""
        return [
            name
            for name, since in services.pending.items()
            if now - since >= self._resolve_delay_s and name not in asking
        ]

    def _next_wake(
        self, services: _Services, asking: Mapping[str, object], next_query: float
    ) -> float:
        """When the next re-query or direct question is due."""
        waits = [
            since + self._resolve_delay_s
            for name, since in services.pending.items()
            if name not in asking
        ]
        return min([next_query, *waits])


def _forget(asking: dict[str, asyncio.Task[None]], name: str, _: asyncio.Task[None]) -> None:
    asking.pop(name, None)


async def _request(zeroconf: Zeroconf, service_type: str, name: str, services: _Services) -> None:
    """Ask for one service the cache could not complete."""
    info = AsyncServiceInfo(service_type, name)
    try:
        found = await info.async_request(
            zeroconf, RESOLVE_TIMEOUT_MS, question_type=DNSQuestionType.QM
        )
    except (OSError, ZeroconfError) as exc:
        log.debug("asking for mDNS service %s failed: %s", name, exc)
        found = False
    if name not in services.pending:
        return  # removed meanwhile, or completed from the cache
    if found:
        services.take_info(name, info)
    else:
        log.debug("mDNS service %s did not resolve; asking again later", name)
        services.pending[name] = asyncio.get_running_loop().time()


def _local_ipv4(address: str) -> str:
    """`address` as an IPv4 address of this host (namespace), or SourceUnavailableError. Checked
    before zeroconf sees it: zeroconf leaks its listening socket when it cannot bind."""
    try:
        ip = str(ipaddress.IPv4Address(address))
    except ValueError as exc:
        raise SourceUnavailableError(f"mDNS needs an IPv4 address, not {address!r}") from exc
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((ip, 0))
        except OSError as exc:
            raise SourceUnavailableError(
                f"address {ip} is not configured here (is the onboarding network up?): "
                f"{exc.strerror or exc}"
            ) from exc
    return ip
