"""The onboarding network as clients see it."""

from __future__ import annotations

import msgspec

DEFAULT_ONBOARDING_SSID = "DelicasaOnboard"


class NetworkStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Contract NetworkStatus."""

    ssid: str
    is_active: bool
    connected_devices: int
