"""Request and response bodies of the V1 API (contract sections 2 and 3).

Domain read models (SessionSnapshot, CandidateView, ...) are already in the contract's shapes;
the structs here wrap them the way each endpoint answers. Optional fields are omitted, never
null.
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


class _Body(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Base of every body: keyword-only, optional fields omitted."""


class StartRequest(_Body, forbid_unknown_fields=True):
    """POST /batch/start."""

    target_ssid: Ssid
    target_password: Passphrase
    config: SessionConfig | None = None


class StartData(_Body):
    """A started (or already started) session."""

    session: SessionSnapshot
    message: str


class SessionData(_Body):
    """GET /batch/{id}, pause, resume and session resume. `timeout_remaining` is like "45s"."""

    session: SessionSnapshot
    devices: list[CandidateView] | None = None
    timeout_remaining: str | None = None
    network_status: NetworkStatus | None = None


class SessionMessage(_Body):
    """Stop / close."""

    session: SessionSnapshot
    message: str


class DevicesData(_Body):
    """GET /batch/{id}/devices; `devices` is always a list."""

    devices: list[CandidateView]


class DeviceActionData(_Body):
    """Provision, retry, skip of one device."""

    mac: str
    state: CandidateState
    message: str


class ProvisionAllRequest(_Body, forbid_unknown_fields=True):
    """POST /batch/{id}/provision-all (an empty body means the defaults)."""

    only_allowlisted: bool = True


class ProvisionAllData(_Body):
    """How many devices provision-all started and left alone."""

    initiated_count: int
    skipped_count: int
    message: str


class AllowlistWrite(_Body, forbid_unknown_fields=True):
    """POST /allowlist and each row of /allowlist/bulk."""

    mac: MacText
    description: Text | None = None
    container_id: Text | None = None


class AllowlistPatch(_Body, forbid_unknown_fields=True):
    """PATCH /allowlist/{mac}: fields left out keep their value."""

    description: Text | None = None
    container_id: Text | None = None


class AllowlistEntriesData(_Body):
    """GET /allowlist."""

    entries: list[AllowlistEntryView]


class AllowlistEntryData(_Body):
    """GET /allowlist/{mac}."""

    entry: AllowlistEntryView


class AllowlistEntryMessage(_Body):
    """POST and PATCH /allowlist."""

    entry: AllowlistEntryView
    message: str


class BulkAddRequest(_Body, forbid_unknown_fields=True):
    """POST /allowlist/bulk."""

    entries: Annotated[list[AllowlistWrite], msgspec.Meta(max_length=10_000)]


class BulkAddData(_Body):
    """How many entries were new and how many were already there."""

    added: int
    skipped: int
    message: str


class BulkRemoveRequest(_Body, forbid_unknown_fields=True):
    """POST /allowlist/bulk-remove."""

    macs: Annotated[list[MacText], msgspec.Meta(max_length=10_000)]


class BulkRemoveData(_Body):
    """How many MACs were removed and how many were not on the list."""

    removed: int
    not_found: int
    message: str


class DeletedData(_Body):
    """DELETE /allowlist/{mac}."""

    success: Literal[True]
    message: str


class ClearedData(_Body):
    """DELETE /allowlist/all and DELETE /sessions/history."""

    cleared: int
    message: str


class MessageData(_Body):
    """A bare confirmation."""

    message: str


class SessionsData(_Body):
    """Lists of sessions (recoverable, history)."""

    sessions: list[SessionSnapshot]


class HealthData(_Body):
    """GET /api/v1/health."""

    status: Literal["ok", "degraded"]
    version: str
    database: str
