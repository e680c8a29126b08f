"""Settings of the target network's MQTT broker (`[broker]`), and the names a device gets there.

The broker runs Mosquitto's dynamic security plugin; the orchestrator connects as its admin
account to create one account per device, and reads every device's status topic.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated
from urllib.parse import urlsplit

import msgspec

from orchestrator.domain.mac import Mac
from orchestrator.protocol.status import STATUS_SUFFIX, status_topic

DEFAULT_TOPIC_BASE = "delicasa/devices"
DEVICE_USERNAME_PREFIX = "dev-"
DEFAULT_PORTS: Mapping[str, int] = MappingProxyType({"mqtt": 1883, "mqtts": 8883})

Seconds = Annotated[float, msgspec.Meta(gt=0, le=3_600)]
BrokerUrl = Annotated[str, msgspec.Meta(pattern="^mqtts?://[^/]+$")]
# No wildcards, no leading `$` (reserved topics) or `/`, no trailing `/`.
TopicBase = Annotated[str, msgspec.Meta(pattern="^[^#+/$]([^#+]*[^#+/])?$")]


class BrokerSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where the broker is and how the orchestrator administers it."""

    url: BrokerUrl = "mqtt://127.0.0.1:1883"
    """Where the orchestrator connects: `mqtt://host[:port]` or `mqtts://host[:port]`."""
    device_url: Annotated[str, msgspec.Meta(pattern="^(mqtts?://[^/]+)?$")] = ""
    """The broker's URL as devices on the target network reach it ("" means `url`)."""
    username: str = "orchestrator"
    """The dynamic security admin account."""
    password: str = ""
    """Its password; set it through the environment (ORCHESTRATOR_BROKER__PASSWORD)."""
    topic_base: TopicBase = DEFAULT_TOPIC_BASE
    """Device status topics are `<topic_base>/<mac hex lower>/status`."""
    connect_timeout_s: Seconds = 5.0
    command_timeout_s: Seconds = 5.0
    """How long an account change may take, connecting included, before it fails."""
    reconnect_max_s: Seconds = 10.0
    """The longest pause between two connection attempts (the backoff doubles up to it)."""

    def __repr__(self) -> str:
        # The password must never reach a log line or a traceback.
        return (
            f"BrokerSettings(url={self.url!r}, device_url={self.device_url!r}, "
            f"username={self.username!r}, password=<redacted>, topic_base={self.topic_base!r})"
        )


def mac_digits(mac: Mac) -> str:
    """`AA:BB:CC:DD:EE:FF` -> `aabbccddeeff`."""
    return mac.replace(":", "").lower()


def device_username(mac: Mac) -> str:
    """The broker username of device `mac`, equal to the client id its firmware uses."""
    return DEVICE_USERNAME_PREFIX + mac_digits(mac)


def device_topic_prefix(settings: BrokerSettings, mac: Mac) -> str:
    """The topic prefix handed to device `mac`; it publishes on `<prefix>/status` only."""
    return f"{settings.topic_base}/{mac_digits(mac)}"


def device_status_topic(settings: BrokerSettings, mac: Mac) -> str:
    """The status topic of device `mac`."""
    return status_topic(device_topic_prefix(settings, mac))


def device_broker_url(settings: BrokerSettings) -> str:
    """The broker URL handed to devices."""
    return settings.device_url or settings.url


def status_filter(topic_base: str) -> str:
    """The subscription that covers every device's status topic."""
    return f"{topic_base}/+/{STATUS_SUFFIX}"


def is_status_topic(topic_base: str, topic: str) -> bool:
    """Whether `topic` is one device's status topic under `topic_base`."""
    head, _, tail = topic.rpartition("/")
    base, _, device = head.rpartition("/")
    return (
        tail == STATUS_SUFFIX
        and base == topic_base
        and bool(device)
        and not {"+", "#"} & set(device)
    )


def broker_endpoint(url: str) -> tuple[str, int, bool]:
    """Host, port and whether TLS is on, of `mqtt://host[:port]` or `mqtts://host[:port]`."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an MQTT broker URL: {url!r}")
    return parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme], parts.scheme == "mqtts"
