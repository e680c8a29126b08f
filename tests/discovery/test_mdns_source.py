"""The mDNS source on loopback against the device side's real advertiser: devices found with
their address and state, state changes, goodbyes, re-queries, services that need asking for,
and what makes it unavailable (no multicast: in a bed's namespace).

Each test session browses a service type of its own (tests.device.test_mdns `service_type`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import pytest
from zeroconf import IPVersion
from zeroconf._dns import DNSPointer
from zeroconf._protocol.outgoing import DNSOutgoing
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf
from zeroconf.const import _CLASS_IN, _DNS_OTHER_TTL, _FLAGS_AA, _FLAGS_QR_RESPONSE, _TYPE_PTR

from orchestrator.device.mdns import DeviceAdvertiser
from orchestrator.discovery.mdns import MdnsSource
from orchestrator.domain.discovery import Clue, SourceKind
from orchestrator.domain.mac import parse_mac
from orchestrator.ports.discovery import SourceUnavailableError
from orchestrator.protocol.advert import txt_record
from orchestrator.protocol.messages import DeviceState
from orchestrator.sim.setns import run_in_namespace, run_loop_in_namespace
from orchestrator.sim.testbed import TestBed
from tests.device.test_mdns import LOOPBACK, MDNS_GROUP, device, service_type
from tests.discovery.netns import running
from tests.sim.conftest import make_bed, netns_bed

__all__ = ["make_bed", "netns_bed", "service_type"]  # fixtures, imported for their use here

MDNS_PORT = 5353


@pytest.fixture
async def advertiser(service_type: str) -> AsyncIterator[DeviceAdvertiser]:
    async with DeviceAdvertiser.start(addresses=[LOOPBACK], service_type=service_type) as adv:
        yield adv


def source(service_type: str, **options: float) -> MdnsSource:
    return MdnsSource(LOOPBACK, service_type=service_type, **options)


async def test_registered_devices_are_found_with_address_and_state(
    service_type: str, advertiser: DeviceAdvertiser
) -> None:
    infos = [device(i) for i in range(20)]
    for i, info in enumerate(infos):
        await advertiser.register(info, LOOPBACK, 8000 + i)
    await advertiser.settle()
    mdns = source(service_type)
    assert mdns.kind is SourceKind.MDNS
    async with running(mdns) as seen:
        await seen.wait_until(lambda seen: len(seen.present()) == 20)
    assert seen.latest() == {
        parse_mac(info.mac): Clue(
            mac=parse_mac(info.mac), source=SourceKind.MDNS, ip=LOOPBACK, state="unprovisioned"
        )
        for info in infos
    }


async def test_a_new_state_and_a_goodbye_are_reported(
    service_type: str, advertiser: DeviceAdvertiser
) -> None:
    info = device(1)
    mac = parse_mac(info.mac)
    async with running(source(service_type)) as seen:
        await advertiser.register(info, LOOPBACK, 8001)
        await seen.wait_until(lambda seen: mac in seen.present())
        await advertiser.update(msgspec.structs.replace(info, state=DeviceState.PAIRING))
        await seen.wait_until(lambda seen: seen.latest()[mac].state == "pairing")
        await advertiser.unregister(info.mac)
        await seen.wait_until(lambda seen: not seen.latest()[mac].present)
    assert [(c.present, c.state) for c in seen.about(mac)] == [
        (True, "unprovisioned"),
        (True, "pairing"),
        (False, None),
    ]
    assert seen.about(mac)[-1].ip == LOOPBACK


async def test_services_that_are_not_devices_are_ignored(
    service_type: str, advertiser: DeviceAdvertiser
) -> None:
    async with AsyncZeroconf(interfaces=[LOOPBACK], ip_version=IPVersion.V4Only) as other:
        stranger = AsyncServiceInfo(
            service_type,
            f"printer.{service_type}",
            port=631,
            properties={"note": "not a device"},
            server="printer.local.",
            parsed_addresses=[LOOPBACK],
        )
        await (await other.async_register_service(stranger, cooperating_responders=True))
        async with running(source(service_type)) as seen:
            await advertiser.register(device(2), LOOPBACK, 8002)
            await seen.wait_until(lambda seen: bool(seen.clues))
        assert set(seen.latest()) == {parse_mac(device(2).mac)}
        await (await other.async_unregister_service(stranger))


@contextlib.contextmanager
def mdns_listener() -> Iterator[socket.socket]:
    """A socket that hears the mDNS traffic on loopback, as every responder does."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("", MDNS_PORT))
        membership = socket.inet_aton(MDNS_GROUP) + socket.inet_aton(LOOPBACK)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        sock.setblocking(False)
        yield sock


def asks_for(packet: bytes, service_type: str) -> bool:
    """Whether `packet` is an mDNS query naming `service_type`."""
    (flags,) = struct.unpack_from("!H", packet, 2)
    labels = b"".join(
        bytes([len(part)]) + part.encode() for part in service_type.rstrip(".").split(".")
    )
    return not flags & 0x8000 and labels in packet


async def test_the_source_keeps_asking_after_the_browsers_own_queries(
    service_type: str, advertiser: DeviceAdvertiser
) -> None:
    # zeroconf's browser asks at about 0, 1, 4 and 9 s, then stops; with re-queries (one a
    # second at most: a responder ignores a repeat within a second) the fourth comes far
    # sooner than 9 s.
    await advertiser.register(device(3), LOOPBACK, 8003)
    loop = asyncio.get_running_loop()
    with mdns_listener() as listener:
        async with running(source(service_type, requery_interval_s=0.2)) as seen:
            queries = 0
            async with asyncio.timeout(7):
                while queries < 4:
                    packet = await loop.sock_recv(listener, 9000)
                    queries += asks_for(packet, service_type)
        assert parse_mac(device(3).mac) in seen.present()


async def next_query_for(listener: socket.socket, name: str) -> None:
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(5):
        while not asks_for(await loop.sock_recv(listener, 9000), name):
            pass


async def test_a_service_reported_without_its_records_is_asked_for(service_type: str) -> None:
    # A responder that sends a bare PTR (RFC 6763 only says SHOULD for the SRV, TXT and A
    # records alongside): the source asks for the rest itself.
    name = f"lazy.{service_type}"
    info = device(9)
    with mdns_listener() as listener:
        async with (
            AsyncZeroconf(interfaces=[LOOPBACK], ip_version=IPVersion.V4Only) as responder,
            running(source(service_type, resolve_delay_s=0.05)) as seen,
        ):
            await next_query_for(listener, service_type)  # the browser's first: no answer
            service = AsyncServiceInfo(
                service_type, name, port=8009, properties=dict(txt_record(info)),
                server="lazy.local.", parsed_addresses=[LOOPBACK],
            )  # fmt: skip
            responder.zeroconf.registry.async_add(service)  # answers, announces nothing
            bare = DNSOutgoing(_FLAGS_QR_RESPONSE | _FLAGS_AA)
            bare.add_answer_at_time(
                DNSPointer(service_type, _TYPE_PTR, _CLASS_IN, _DNS_OTHER_TTL, name), 0
            )
            responder.zeroconf.async_send(bare)
            await next_query_for(listener, name)
            await seen.wait_until(lambda seen: parse_mac(info.mac) in seen.present())
            responder.zeroconf.registry.async_remove(service)


async def test_an_interface_name_is_refused() -> None:
    with pytest.raises(SourceUnavailableError, match="needs an IPv4 address"):
        async for _ in MdnsSource("lo").clues():
            pass


async def test_an_address_this_host_lacks_makes_the_source_unavailable() -> None:
    with pytest.raises(SourceUnavailableError, match=r"198\.51\.100\.7 is not configured here"):
        async for _ in MdnsSource("198.51.100.7").clues():
            pass


def _no_multicast_memberships() -> None:
    # Per namespace; the bed's own Pi namespace goes away with the bed.
    Path("/proc/sys/net/ipv4/igmp_max_memberships").write_text("0", encoding="ascii")


@pytest.mark.netns
@pytest.mark.parametrize("netns_bed", [1], indirect=True)
async def test_without_multicast_the_source_is_unavailable(netns_bed: TestBed) -> None:
    pi = netns_bed.pi_namespace
    await run_in_namespace(pi, _no_multicast_memberships)

    async def main() -> None:
        async for _ in MdnsSource(str(netns_bed.onboarding_gateway)).clues():
            pass

    with pytest.raises(SourceUnavailableError, match="cannot join the mDNS multicast group"):
        await run_loop_in_namespace(pi, main)
