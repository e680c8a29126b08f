"""What a device publishes on the target network's MQTT broker.

One retained topic per device, `<topic_prefix>/status`. After joining, the device connects
with a last-will of `offline` on that topic and publishes `online` carrying the nonce of the
credentials it was given: only an `online` with the nonce of the current attempt proves the
device is there (a retained message from an earlier attempt carries an older nonce).
"""

from __future__ import annotations

from typing import Literal

import msgspec

STATUS_SUFFIX = "status"


def status_topic(topic_prefix: str) -> str:
    """The device's status topic."""
    return f"{topic_prefix.rstrip('/')}/{STATUS_SUFFIX}"


class CloudReport(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """How the device's registration with the cloud of its credentials went (sent only by
    devices that were given a `cloud` section)."""

    registered: bool
    device_name: str | None = None
    """The name the cloud knows the device by."""
    error: str | None = None
    """Why registration failed, in words a technician can act on (never a secret)."""


class Online(
    msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="state", tag="online"
):
    """Published (retained, QoS 1) once the device is on the target network."""

    nonce: str
    mac: str
    ip: str
    firmware_version: str
    device_name: str
    cloud: CloudReport | None = None


class Offline(msgspec.Struct, frozen=True, kw_only=True, tag_field="state", tag="offline"):
    """The last-will (retained, QoS 1): the broker publishes it when the device vanishes."""

    mac: str


StatusMessage = Online | Offline

_DECODER: msgspec.json.Decoder[Online | Offline] = msgspec.json.Decoder(StatusMessage)


def decode_status(payload: bytes) -> StatusMessage:
    """Parse a status payload (raises msgspec.ValidationError / DecodeError on garbage)."""
    return _DECODER.decode(payload)


def encode_status(message: StatusMessage) -> bytes:
    """Serialise a status payload."""
    return msgspec.json.encode(message)


QOS: Literal[1] = 1
