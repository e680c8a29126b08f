"""A device's settings: what it is (fixed at the factory) and how fast it acts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

import msgspec

from orchestrator.protocol.messages import Rssi, SecurityScheme

Sleep = Callable[[float], Awaitable[None]]
Delay = Annotated[float, msgspec.Meta(ge=0)]


class DeviceIdentity(msgspec.Struct, frozen=True, kw_only=True):
    """What a device is: fixed at the factory."""

    mac: str
    family: str = "esp32-cam"
    model: str = "sim-1"
    firmware_version: str = "1.0.0"
    rssi: Rssi = -50
    security_schemes: tuple[SecurityScheme, ...] = (SecurityScheme.PLAIN,)


class AgentTiming(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Attempts and delays of a device; every delay goes through the agent's injected sleep."""

    join_attempts: Annotated[int, msgspec.Meta(ge=1)] = 3
    """Join (and first broker connect) attempts before the device gives up."""
    leave_after_s: Delay = 0.2
    """Between accepting credentials and leaving, so the 202 answer gets out first."""
    join_retry_s: Delay = 2.0
    connect_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    reconnect_s: Delay = 2.0
    """Between MQTT connection attempts."""
    reboot_s: Delay = 3.0
    """LATE: how long each reboot takes."""
    flap_s: Delay = 1.0
    """FLAPS: online time before the connection drops."""
    stale_gap_s: Delay = 1.0
    """STALE_RETAINED: how long the stale online sits alone on the topic."""
    slow_answer_s: Delay = 5.0
    """SLOW: delay before every HTTP answer."""
