"""DeviceAdvertiser on loopback, seen by a real zeroconf browser.

Every test session browses its own service type (`_dc<random>._tcp.local.`), so parallel runs
on one machine never see each other's devices.

The browser asks QM questions (multicast replies): with QU questions the responder answers by
unicast to 127.0.0.1:5353, which every mDNS socket on the machine shares (SO_REUSEPORT), and
the kernel hands each such datagram to one of them only; with another mDNS process running on
loopback the browser then hears nothing at all. It also resolves devices from its cache
rather than with one query per device: the answer to its PTR question carries every device's
SRV, TXT and A records in the packets that follow, and per-device questions asked before
those arrive make the responder hold its answers back for a second (RFC 6762 section 14).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import msgspec
import pytest
from zeroconf import DNSQuestionType, IPVersion, RecordUpdate, RecordUpdateListener, Zeroconf
from zeroconf import ServiceStateChange as Change
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from orchestrator.device.mdns import DeviceAdvertiser, MdnsError, instance_name, service_name
from orchestrator.protocol import PROTOCOL_VERSION
from orchestrator.protocol.advert import Advertisement, parse_txt
from orchestrator.protocol.messages import (
    DeviceInfo,
    DeviceState,
    FailureReason,
    LastFailure,
    SecurityScheme,
)

LOOPBACK = "127.0.0.1"
MDNS_GROUP = "224.0.0.251"
FIND_TIMEOUT_S = 5.0


def _loopback_multicast_problem() -> str | None:
    """Why multicast on loopback does not work here, or None when a datagram sent to the
    mDNS group on a private port comes back."""
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
    ):
        try:
            receiver.bind(("", 0))
            port = receiver.getsockname()[1]
            membership = socket.inet_aton(MDNS_GROUP) + socket.inet_aton(LOOPBACK)
            receiver.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
            receiver.settimeout(1.0)
            sender.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(LOOPBACK))
            sender.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            probe = secrets.token_bytes(8)
            sender.sendto(probe, (MDNS_GROUP, port))
            while receiver.recv(64) != probe:
                pass
        except OSError as exc:
            return f"multicast on loopback does not work here ({exc})"
    return None


@pytest.fixture(scope="session")
def service_type() -> str:
    """A service type of this test session only."""
    problem = _loopback_multicast_problem()
    if problem is not None:
        pytest.skip(problem)
    return f"_dc{secrets.token_hex(4)}._tcp.local."


def device(index: int, state: DeviceState = DeviceState.UNPROVISIONED) -> DeviceInfo:
    return DeviceInfo(
        protocol_version=PROTOCOL_VERSION,
        mac=f"02:00:00:00:{index // 256:02X}:{index % 256:02X}",
        family="esp32-cam",
        model="AI-Thinker",
        firmware_version="1.4.2",
        rssi=-50,
        state=state,
        security_schemes=[SecurityScheme.PLAIN, SecurityScheme.SEC2],
    )


@dataclass(frozen=True, slots=True)
class Seen:
    """One device as the browser resolved it."""

    advert: Advertisement
    address: str
    port: int


class Browser(RecordUpdateListener):
    """Collects the devices of one service type: a browser asking QM questions, resolved from
    the cache whenever records arrive."""

    def __init__(self, zeroconf: AsyncZeroconf, service_type: str) -> None:
        self._zeroconf = zeroconf
        self._service_type = service_type
        self._unresolved: set[str] = set()
        self._changed = asyncio.Event()
        self.devices: dict[str, Seen] = {}
        """By service instance name."""

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, service_type: str, address: str = LOOPBACK) -> AsyncIterator[Browser]:
        async with AsyncZeroconf(interfaces=[address], ip_version=IPVersion.V4Only) as zc:
            browser = cls(zc, service_type)
            zc.zeroconf.async_add_listener(browser, None)
            service_browser = AsyncServiceBrowser(
                zc.zeroconf,
                service_type,
                handlers=[browser._on_change],
                question_type=DNSQuestionType.QM,
            )
            try:
                yield browser
            finally:
                await service_browser.async_cancel()
                zc.zeroconf.async_remove_listener(browser)

    async def wait_until(
        self, predicate: Callable[[dict[str, Seen]], bool], timeout_s: float = FIND_TIMEOUT_S
    ) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate(self.devices):
                self._changed.clear()
                await self._changed.wait()

    def _on_change(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: Change
    ) -> None:
        if state_change is Change.Removed:
            self._unresolved.discard(name)
            self.devices.pop(name, None)
            self._changed.set()
            return
        self._unresolved.add(name)
        self._resolve()

    def async_update_records_complete(self) -> None:
        self._resolve()

    def async_update_records(self, zc: Zeroconf, now: float, records: list[RecordUpdate]) -> None:
        """Records are read from the cache once the whole packet is in."""

    def _resolve(self) -> None:
        for name in list(self._unresolved):
            info = AsyncServiceInfo(self._service_type, name)
            if not info.load_from_cache(self._zeroconf.zeroconf) or info.port is None:
                continue
            self._unresolved.discard(name)
            self.devices[name] = Seen(
                parse_txt(dict(info.properties.items())), info.parsed_addresses()[0], info.port
            )
            self._changed.set()


@pytest.fixture
async def advertiser(service_type: str) -> AsyncIterator[DeviceAdvertiser]:
    async with DeviceAdvertiser.start(addresses=[LOOPBACK], service_type=service_type) as adv:
        yield adv


@pytest.fixture
def no_leaked_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    assert set(threading.enumerate()) <= before


def test_names_come_from_the_mac() -> None:
    assert instance_name("aa-bb-cc-dd-ee-ff") == "dc-aabbccddeeff"
    assert service_name("AA:BB:CC:DD:EE:FF") == "dc-aabbccddeeff._delicasa._tcp.local."


async def test_twenty_registered_devices_are_all_found(
    service_type: str, advertiser: DeviceAdvertiser
) -> None:
    infos = [device(i) for i in range(20)]
    async with asyncio.TaskGroup() as group:
        for i, info in enumerate(infos):
            group.create_task(advertiser.register(info, LOOPBACK, 8000 + i))
    assert len(advertiser) == 20
    await advertiser.settle()  # a browser that comes later must ask

    started = time.monotonic()
    async with Browser.open(service_type) as browser:
        await browser.wait_until(lambda seen: len(seen) == 20)
    elapsed = time.monotonic() - started

    for i, info in enumerate(infos):
        seen = browser.devices[service_name(info.mac, service_type)]
        assert seen.address == LOOPBACK
        assert seen.port == 8000 + i
        assert seen.advert == Advertisement(
            mac=info.mac,
            family="esp32-cam",
            model="AI-Thinker",
            firmware_version="1.4.2",
            protocol_version=PROTOCOL_VERSION,
            state=DeviceState.UNPROVISIONED,
            security_schemes=(SecurityScheme.PLAIN, SecurityScheme.SEC2),
        )
    # Devices announced less than a second ago may be re-sent only after that second.
    assert elapsed < 2.5


async def test_devices_registered_while_browsing_are_found_at_once(
    service_type: str, advertiser: DeviceAdvertiser
) -> None:
    async with Browser.open(service_type) as browser:
        started = time.monotonic()
        async with asyncio.TaskGroup() as group:
            for i in range(20):
                group.create_task(advertiser.register(device(i), LOOPBACK, 9000 + i))
        await browser.wait_until(lambda seen: len(seen) == 20)
        # The announcements alone carry everything: no question, no one-second rule.
        assert time.monotonic() - started < 1.0


async def test_a_state_change_is_seen_by_a_browser(
    service_type: str, advertiser: DeviceAdvertiser
) -> None:
    info = device(1)
    name = service_name(info.mac, service_type)
    await advertiser.register(info, LOOPBACK, 8080)
    async with Browser.open(service_type) as browser:
        await browser.wait_until(lambda seen: name in seen)
        failure = LastFailure(reason=FailureReason.AUTH_ERROR, message="bad password", attempts=3)
        await advertiser.update(
            msgspec.structs.replace(info, state=DeviceState.FAILED, last_failure=failure)
        )
        await browser.wait_until(lambda seen: seen[name].advert.state is DeviceState.FAILED)
    advert = browser.devices[name].advert
    assert advert.failure is FailureReason.AUTH_ERROR
    assert browser.devices[name].port == 8080


async def test_unregister_removes_the_device(
    service_type: str, advertiser: DeviceAdvertiser
) -> None:
    keep, leave = device(1), device(2)
    await advertiser.register(keep, LOOPBACK, 8001)
    await advertiser.register(leave, LOOPBACK, 8002)
    async with Browser.open(service_type) as browser:
        await browser.wait_until(lambda seen: len(seen) == 2)
        await advertiser.unregister(leave.mac)
        await browser.wait_until(lambda seen: len(seen) == 1)
        assert set(browser.devices) == {service_name(keep.mac, service_type)}
    assert leave.mac not in advertiser
    assert keep.mac in advertiser
    assert keep.mac.lower().replace(":", "-") in advertiser
    assert "not-a-mac" not in advertiser


async def test_closing_says_goodbye_and_leaves_nothing_running(
    service_type: str, no_leaked_threads: None
) -> None:
    async with Browser.open(service_type) as browser:
        async with DeviceAdvertiser.start(addresses=[LOOPBACK], service_type=service_type) as adv:
            await adv.register(device(7), LOOPBACK, 8007)
            await browser.wait_until(lambda seen: len(seen) == 1)
        await browser.wait_until(lambda seen: not seen)
    with pytest.raises(MdnsError, match="closed"):
        await adv.register(device(8), LOOPBACK, 8008)


async def test_misuse_is_refused_with_mdns_errors(
    service_type: str, advertiser: DeviceAdvertiser
) -> None:
    info = device(3)
    await advertiser.register(info, LOOPBACK, 8003)
    with pytest.raises(MdnsError, match="already advertised"):
        await advertiser.register(info, LOOPBACK, 8004)
    with pytest.raises(MdnsError, match="not advertised"):
        await advertiser.update(device(4))
    with pytest.raises(MdnsError, match="not advertised"):
        await advertiser.unregister(device(4).mac)
    with pytest.raises(MdnsError, match="not an IPv4 address"):
        await advertiser.register(device(5), "eth0", 8005)
    with pytest.raises(MdnsError, match="out of range"):
        await advertiser.register(device(5), LOOPBACK, 0)
    assert len(advertiser) == 1


async def test_starting_on_an_interface_name_is_refused() -> None:
    with pytest.raises(MdnsError, match="not an IPv4 address"):
        async with DeviceAdvertiser.start(addresses=["lo"]):
            pass


async def test_starting_on_an_address_this_host_lacks_is_an_mdns_error() -> None:
    with pytest.raises(MdnsError, match=r"cannot start an mDNS responder on 198\.51\.100\.7"):
        async with DeviceAdvertiser.start(addresses=["198.51.100.7"]):
            pass
