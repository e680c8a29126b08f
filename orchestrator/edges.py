"""The appliance's outside world as configuration describes it: the onboarding network's
backend, the device transport, the discovery sources, and the target broker the provisioning
engine uses.

The composition root (`orchestrator.service`) enters `appliance_edges` once; everything built
here is closed again when it exits (the network taken down, the connection pool closed).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import msgspec

from orchestrator.batch.pairing import NoDeviceClient
from orchestrator.broker.link import BrokerLink
from orchestrator.broker.settings import device_broker_url
from orchestrator.discovery.arp import ArpSource, address_range
from orchestrator.discovery.leases import LeaseSource
from orchestrator.discovery.mdns import MdnsSource
from orchestrator.discovery.service import Discovery
from orchestrator.discovery.settings import NetworkBackend
from orchestrator.discovery.stations import StationSource
from orchestrator.domain.discovery import SourceKind
from orchestrator.network.bridge import BridgeNetwork
from orchestrator.network.hostapd import HostapdNetwork
from orchestrator.network.standby import StandbyNetwork
from orchestrator.ports.broker import DeviceAccounts, OnlineProofs
from orchestrator.ports.devices import (
    DeviceClient,
    DeviceSource,
    DeviceTransport,
    Engine,
    OnboardingNetwork,
)
from orchestrator.ports.discovery import ClueSource
from orchestrator.provisioning.engine import BrokerPlan
from orchestrator.settings import Settings
from orchestrator.transport.http import DeviceHttpClient

log = logging.getLogger(__name__)


class Carriers(msgspec.Struct, frozen=True, kw_only=True):
    """What the provisioning engine's requests travel over."""

    transport: DeviceTransport
    accounts: DeviceAccounts
    proofs: OnlineProofs
    broker: BrokerPlan


class Edges(msgspec.Struct, frozen=True, kw_only=True):
    """The replaceable outside world (tests plug in their own)."""

    devices: DeviceSource
    network: OnboardingNetwork
    engine: Engine | None = None
    """A ready engine; None has the composition root build the provisioning engine over
    `carriers` (or, without carriers, one that refuses to pretend)."""
    carriers: Carriers | None = None
    client: DeviceClient = msgspec.field(default_factory=NoDeviceClient)


def network_of(settings: Settings) -> OnboardingNetwork:
    """The onboarding network backend configuration names."""
    ssid = settings.batch.onboarding_ssid
    match settings.network.backend:
        case NetworkBackend.HOSTAPD:
            return HostapdNetwork(ssid, settings.hostapd)
        case NetworkBackend.BRIDGE:
            return BridgeNetwork(settings.network.interface, ssid=ssid)
        case NetworkBackend.STANDBY:
            return StandbyNetwork(ssid)


def sources_of(settings: Settings, network: OnboardingNetwork) -> list[ClueSource]:
    """The discovery sources configuration turns on, most authoritative first."""
    chosen = settings.discovery
    sources: list[ClueSource] = []
    if SourceKind.STATION in chosen.sources:
        sources.append(StationSource(network))
    if SourceKind.LEASE in chosen.sources:
        events = Path(chosen.dhcp_events_file) if chosen.dhcp_events_file else None
        sources.append(
            LeaseSource(
                Path(chosen.lease_file), events_file=events, poll_interval_s=chosen.lease_poll_s
            )
        )
    if SourceKind.MDNS in chosen.sources:
        sources.append(
            MdnsSource(
                settings.network.address,
                service_type=chosen.mdns_service_type,
                requery_interval_s=chosen.mdns_requery_s,
            )
        )
    if SourceKind.ARP in chosen.sources:
        try:
            addresses = sweep_addresses(chosen.arp_sweep)
        except ValueError as error:
            log.warning("discovery: no ARP sweep, [discovery] arp_sweep is wrong: %s", error)
        else:
            sources.append(
                ArpSource(settings.network.interface, addresses, interval_s=chosen.arp_interval_s)
            )
    return sources


def sweep_addresses(text: str) -> list[IPv4Address]:
    """`192.168.4.0/24` (its hosts) or `192.168.4.10-192.168.4.250` (inclusive)."""
    first, dash, last = text.partition("-")
    if dash:
        return address_range(IPv4Address(first.strip()), IPv4Address(last.strip()))
    return list(IPv4Network(text, strict=False).hosts())


@contextlib.asynccontextmanager
async def appliance_edges(settings: Settings) -> AsyncIterator[Edges]:
    """Build the configured edges; the network goes down and connections close on exit."""
    network = network_of(settings)
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(
            DeviceHttpClient.open(
                port=settings.discovery.device_port, timeout_s=settings.discovery.probe_timeout_s
            )
        )
        link = await stack.enter_async_context(BrokerLink.open(settings.broker))
        stack.push_async_callback(network.down)
        discovery = Discovery(
            sources_of(settings, network),
            client,
            probe_concurrency=settings.discovery.probe_concurrency,
        )
        log.info(
            "onboarding network: %s on %s; discovery: %s",
            settings.network.backend,
            settings.network.interface,
            ", ".join(sorted(settings.discovery.sources)) or "off",
        )
        carriers = Carriers(
            transport=client,
            accounts=link.accounts,
            proofs=link.proofs,
            broker=BrokerPlan(
                device_url=device_broker_url(settings.broker),
                topic_base=settings.broker.topic_base,
            ),
        )
        yield Edges(devices=discovery, network=network, carriers=carriers, client=client)
