"""The device's HTTP API on the onboarding network (prefix `/v1`), as msgspec structs.

Requests the orchestrator sends and answers the device gives. Decoders of both sides ignore
unknown fields (firmware and orchestrator evolve separately); see the package's COMPATIBILITY.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import msgspec

from orchestrator.protocol import PROTOCOL_VERSION

API_PREFIX = f"/v{PROTOCOL_VERSION}"
INFO_PATH = f"{API_PREFIX}/info"
CREDENTIALS_PATH = f"{API_PREFIX}/credentials"
IDENTIFY_PATH = f"{API_PREFIX}/identify"
PAIRING_PATH = f"{API_PREFIX}/pairing"

MAX_REQUEST_BYTES = 4096
"""ESP-IDF's HTTP server handles small bodies only; every request fits in this."""


class DeviceState(StrEnum):
    """Where a device is in its life. Advertised over mDNS and in /info."""

    UNPROVISIONED = "unprovisioned"
    """Factory-fresh (or reset): waiting for credentials."""
    PAIRING = "pairing"
    """Not on the allowlist: showing a pairing code on its display."""
    PROVISIONED = "provisioned"
    """Has credentials and is (or is becoming) online on the target network."""
    FAILED = "failed"
    """Could not join the target network; back on the onboarding network, says why."""


class FailureReason(StrEnum):
    """Why the last attempt to go online failed (open set: new reasons may appear)."""

    AUTH_ERROR = "auth_error"
    """The target network refused the password."""
    NETWORK_NOT_FOUND = "network_not_found"
    """No access point with the target SSID was in range."""
    DHCP_FAILED = "dhcp_failed"
    """Associated, but got no address."""
    BROKER_UNREACHABLE = "broker_unreachable"
    """On the network, but the MQTT broker refused or did not answer."""


class SecurityScheme(StrEnum):
    """How credentials may be delivered. Devices list what they support."""

    PLAIN = "plain"
    """JSON over HTTP, protected only by the onboarding network's WPA2 key."""
    SEC2 = "sec2"
    """SRP-6a + AES-256-GCM session (ESP-IDF security 2); reserved for a later transport."""


Seconds = Annotated[int, msgspec.Meta(ge=1, le=300)]
Rssi = Annotated[int, msgspec.Meta(ge=-127, le=0)]
Nonce = Annotated[str, msgspec.Meta(min_length=16, max_length=64, pattern="^[A-Za-z0-9_-]+$")]


class LastFailure(msgspec.Struct, frozen=True, kw_only=True):
    """The reason and words of the last failed attempt."""

    reason: str
    """A FailureReason value; an open set, so an unknown reason from newer firmware is kept."""
    message: str
    attempts: int
    """Join attempts made before the device gave up."""


class DeviceInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """GET /v1/info."""

    protocol_version: int
    mac: str
    family: str
    """Device family, e.g. `esp32-cam` or `thermal-camera` (open set)."""
    model: str
    firmware_version: str
    rssi: Rssi
    """Signal of the onboarding network as the device hears it, in dBm."""
    state: DeviceState
    security_schemes: list[str]
    """SecurityScheme values; an open set (unknown schemes are kept, and not used)."""
    last_failure: LastFailure | None = None
    device_name: str | None = None
    """Set once the device holds credentials."""


class MqttCredentials(msgspec.Struct, frozen=True, kw_only=True):
    """Where and as whom the device reports on the target network."""

    broker_url: Annotated[str, msgspec.Meta(pattern="^mqtts?://[^/]+$")]
    """`mqtt://host:port` or `mqtts://host:port`."""
    username: str
    password: str
    topic_prefix: Annotated[str, msgspec.Meta(min_length=1, pattern="^[^#+]+$")]
    """The device publishes its status to `<topic_prefix>/status` and nowhere else."""


class CloudProvisioning(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Optional: register with a cloud on first start (ThingsBoard device provisioning)."""

    provider: str
    """`thingsboard` (open set)."""
    host: str
    port: Annotated[int, msgspec.Meta(ge=1, le=65_535)]
    provision_device_key: str
    provision_device_secret: str
    device_name_prefix: Annotated[str, msgspec.Meta(pattern="^[a-z-]+$")] | None = None


class Credentials(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """POST /v1/credentials: everything the device needs to go online on the target network.

    Delivering the same credentials again is harmless (same nonce: same answer). Different
    credentials while the device is already leaving answer `busy`.
    """

    target_ssid: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    target_password: Annotated[str, msgspec.Meta(max_length=64)]
    mqtt: MqttCredentials
    device_name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    nonce: Nonce
    """Issued for this attempt; the device's online status must carry it back."""
    container_id: str | None = None
    cloud: CloudProvisioning | None = None


class DeliveryReceipt(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to POST /v1/credentials (202): accepted; the device leaves shortly."""

    protocol_version: int
    nonce: str
    state: DeviceState


class IdentifyRequest(msgspec.Struct, frozen=True, kw_only=True):
    """POST /v1/identify: blink (or beep) so a technician can find the device."""

    seconds: Seconds = 5


class PairingDisplay(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """POST /v1/pairing shows `code` on the device's display; GET /v1/pairing tells what the
    display shows now (no `code`: nothing)."""

    code: Annotated[str, msgspec.Meta(pattern="^[A-Z0-9]{6}$")] | None = None
    claim_url: str | None = None
    """For devices with a screen big enough for a QR code of the claim link."""
    qr_svg: str | None = None
    """A QR code of `claim_url`, ready to draw: an SVG document (one `<svg>` element with a
    `viewBox` and no fixed size, one `<path>`, no XML declaration) rendered with segno. Sent
    only with `claim_url`, and only while the whole request stays within MAX_REQUEST_BYTES;
    devices without a screen ignore it."""
    protocol_version: int | None = None
    """Set in the GET answer (every answer carries it); ignored in a request."""


class Acknowledged(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to identify and pairing (200)."""

    protocol_version: int
    ok: bool = True


class DeviceErrorCode(StrEnum):
    """Machine-readable device errors."""

    INVALID_REQUEST = "invalid_request"
    """The body is not valid JSON of the expected shape (`message` says which field)."""
    UNSUPPORTED_SCHEME = "unsupported_scheme"
    """Credentials came over a scheme the device does not accept."""
    BUSY = "busy"
    """Different credentials while the device is already leaving with others."""
    NOT_FOUND = "not_found"
    """No such endpoint (or not in this protocol version)."""
    PAYLOAD_TOO_LARGE = "payload_too_large"
    """The body is over MAX_REQUEST_BYTES."""


class DeviceError(msgspec.Struct, frozen=True, kw_only=True):
    """The `error` object of a device's error answer."""

    code: DeviceErrorCode
    message: str


class ErrorAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """Every 4xx/5xx answer of the device API."""

    protocol_version: int
    error: DeviceError


ERROR_STATUS: dict[DeviceErrorCode, int] = {
    DeviceErrorCode.INVALID_REQUEST: 400,
    DeviceErrorCode.UNSUPPORTED_SCHEME: 400,
    DeviceErrorCode.BUSY: 409,
    DeviceErrorCode.NOT_FOUND: 404,
    DeviceErrorCode.PAYLOAD_TOO_LARGE: 413,
}


class Endpoint(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the API table in contracts/device-protocol.md."""

    method: str
    path: str
    request: type[msgspec.Struct] | None
    answer: type[msgspec.Struct]
    status: int
    summary: str


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        method="GET", path=INFO_PATH, request=None, answer=DeviceInfo, status=200,
        summary="Who the device is, its signal, state and last failure.",
    ),
    Endpoint(
        method="POST", path=CREDENTIALS_PATH, request=Credentials, answer=DeliveryReceipt,
        status=202,
        summary="Deliver target Wi-Fi and MQTT credentials; the device then leaves to join.",
    ),
    Endpoint(
        method="POST", path=IDENTIFY_PATH, request=IdentifyRequest, answer=Acknowledged,
        status=200, summary="Blink so a technician can find the device.",
    ),
    Endpoint(
        method="POST", path=PAIRING_PATH, request=PairingDisplay, answer=Acknowledged,
        status=200, summary="Show a pairing code (pair-by-code) on the device's display.",
    ),
    Endpoint(
        method="GET", path=PAIRING_PATH, request=None, answer=PairingDisplay, status=200,
        summary="What the pairing display shows now.",
    ),
)  # fmt: skip
