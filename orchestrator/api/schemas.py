"""Request and response bodies of the V1 API (contract sections 2 and 3).

Domain read models (SessionSnapshot, CandidateView, ...) are already in the contract's shapes;
the structs here wrap them the way each endpoint answers. Every struct is keyword-only and
omits unset optional fields (never null); request bodies refuse unknown fields.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from orchestrator.domain.allowlist import AllowlistEntryView
from orchestrator.domain.candidate import CandidateState, CandidateView
from orchestrator.domain.network import NetworkStatus
from orchestrator.domain.session import SessionConfig, SessionSnapshot

# IEEE 802.11: an SSID is 1-32 octets; a WPA2 passphrase 8-63 characters (or 64 hex digits).
Ssid = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
Passphrase = Annotated[str, msgspec.Meta(min_length=8, max_length=64)]
Text = Annotated[str, msgspec.Meta(max_length=200)]
MacText = Annotated[str, msgspec.Meta(max_length=40, description="Any case; ':', '-' or none")]


class CloudRequest(
    msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, forbid_unknown_fields=True
):
    """Where the session's devices register themselves (ThingsBoard MQTT device
    provisioning). The key and secret are write-only, like the Wi-Fi password."""

    provider: Literal["thingsboard"]
    host: Annotated[str, msgspec.Meta(min_length=1, max_length=253)]
    port: Annotated[int, msgspec.Meta(ge=1, le=65_535)] = 1883
    provision_device_key: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    provision_device_secret: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    device_name_prefix: Annotated[str, msgspec.Meta(pattern="^[a-z-]+$", max_length=40)] | None = (
        None
    )


class StartRequest(
    msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, forbid_unknown_fields=True
):
    """POST /batch/start."""

    target_ssid: Ssid
    target_password: Passphrase
    config: SessionConfig | None = None
    cloud: CloudRequest | None = None
    """Optional: devices that support it register with this cloud on the target network."""


class StartData(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A started (or already started) session."""

    session: SessionSnapshot
    message: str


class SessionData(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """GET /batch/{id}, pause, resume and session resume. `timeout_remaining` is like "45s"."""

    session: SessionSnapshot
    devices: list[CandidateView] | None = None
    timeout_remaining: str | None = None
    network_status: NetworkStatus | None = None


class SessionMessage(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Stop / close."""

    session: SessionSnapshot
    message: str


class DevicesData(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """GET /batch/{id}/devices; `devices` is always a list."""

    devices: list[CandidateView]


class DeviceActionData(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Provision, retry, skip of one device."""

    mac: str
    state: CandidateState
    message: str


class ProvisionAllRequest(
    msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, forbid_unknown_fields=True
):
    """POST /batch/{id}/provision-all (an empty body means the defaults)."""

    only_allowlisted: bool = True


class ProvisionAllData(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """How many devices provision-all started and left alone."""

    initiated_count: int
    skipped_count: int
    message: str


class AllowlistWrite(
    msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, forbid_unknown_fields=True
):
    """POST /allowlist and each row of /allowlist/bulk."""

    mac: MacText
    description: Text | None = None
    container_id: Text | None = None


class AllowlistPatch(
    msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, forbid_unknown_fields=True
):
    """PATCH /allowlist/{mac}: fields left out keep their value."""

    description: Text | None = None
    container_id: Text | None = None


class AllowlistEntriesData(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """GET /allowlist."""

    entries: list[AllowlistEntryView]


class AllowlistEntryData(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """GET /allowlist/{mac}."""

    entry: AllowlistEntryView


class AllowlistEntryMessage(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """POST and PATCH /allowlist."""

    entry: AllowlistEntryView
    message: str


class BulkAddRequest(
    msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, forbid_unknown_fields=True
):
    """POST /allowlist/bulk."""

    entries: Annotated[list[AllowlistWrite], msgspec.Meta(max_length=10_000)]


class BulkAddData(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """How many entries were new and how many were already there."""

    added: int
    skipped: int
    message: str


class ImportData(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What a CSV import did."""

    added: int
    updated: int
    unchanged: int
    message: str


class BulkRemoveRequest(
    msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, forbid_unknown_fields=True
):
    """POST /allowlist/bulk-remove."""

    macs: Annotated[list[MacText], msgspec.Meta(max_length=10_000)]


class BulkRemoveData(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """How many MACs were removed and how many were not on the list."""

    removed: int
    not_found: int
    message: str


class DeletedData(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """DELETE /allowlist/{mac}."""

    success: Literal[True]
    message: str


class ClearedData(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """DELETE /allowlist/all and DELETE /sessions/history."""

    cleared: int
    message: str


class MessageData(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A bare confirmation."""

    message: str


class SessionsData(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Lists of sessions (recoverable, history)."""

    sessions: list[SessionSnapshot]


class HealthData(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """GET /api/v1/health."""

    status: Literal["ok", "degraded"]
    version: str
    database: str
