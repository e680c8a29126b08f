"""The onboarding network as clients see it, and the stations associated with it."""

from __future__ import annotations

import msgspec

from orchestrator.domain.mac import Mac

DEFAULT_ONBOARDING_SSID = "DelicasaOnboard"


class NetworkStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Contract NetworkStatus."""

    ssid: str
    is_active: bool
    connected_devices: int


class Station(msgspec.Struct, frozen=True, kw_only=True):
    """A device associated with the onboarding network, as the access point sees it."""

    mac: Mac
    rssi: int | None = None
    """Signal of the device as the access point hears it (dBm); None where no radio measures
    it (the test bed's bridge)."""
