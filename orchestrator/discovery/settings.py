"""Settings of the onboarding network and of discovery (`[network]`, `[discovery]`)."""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec

from orchestrator.domain.discovery import SourceKind
from orchestrator.protocol.advert import SERVICE_TYPE

Interval = Annotated[float, msgspec.Meta(gt=0, le=3_600)]


class NetworkBackend(enum.StrEnum):
    """What stands for the onboarding access point."""

    STANDBY = "standby"
    """No radio (development, CI): up/down only flip is_active."""
    HOSTAPD = "hostapd"
    """The Pi's radio, through hostapd (systemd unit and control interface; see [hostapd])."""
    BRIDGE = "bridge"
    """A Linux bridge standing in for the access point (the namespace test bed)."""


class NetworkSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The onboarding network: its backend, interface and the Pi's address on it."""

    backend: NetworkBackend = NetworkBackend.STANDBY
    interface: str = "wlan0"
    """The onboarding interface (the bridge's name with the bridge backend)."""
    address: str = "192.168.4.1"
    """The Pi's IPv4 address on it: mDNS is pinned to it (never to every interface)."""


class DiscoverySettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How devices on the onboarding network are found and asked who they are."""

    sources: frozenset[SourceKind] = frozenset(SourceKind)
    """The sources to run; any of them may turn out unavailable at run time (logged)."""
    lease_file: str = "/var/lib/misc/dnsmasq.leases"
    dhcp_events_file: str | None = "/run/orchestrator/dhcp-events"
    """Where dnsmasq's `--dhcp-script` hook appends its events (None: lease file only)."""
    lease_poll_s: Interval = 0.1
    mdns_service_type: str = SERVICE_TYPE
    mdns_requery_s: Interval = 10.0
    """zeroconf stops querying by itself after about 14 s; discovery asks again this often."""
    arp_sweep: Annotated[str, msgspec.Meta(pattern=r"^[0-9./ -]+$")] = "192.168.4.0/24"
    """The addresses an ARP sweep asks: a network (`192.168.4.0/24`) or an inclusive range
    (`192.168.4.10-192.168.4.250`). Keep it to the DHCP pool: a /16 takes too long."""
    arp_interval_s: Interval = 5.0
    probe_concurrency: Annotated[int, msgspec.Meta(ge=1, le=256)] = 16
    probe_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=30)] = 3.0
    device_port: Annotated[int, msgspec.Meta(ge=1, le=65_535)] = 80
    """Where devices serve their API (80 on real devices)."""
