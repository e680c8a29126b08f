"""Domain events: what clients are told, in the shapes of contract section 4.

Each event is the complete SSE envelope, so the event log can store it once and replay it
byte for byte. The `connection.*` types belong to a stream, not to the domain, but share the
envelope and so live here too.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec

from orchestrator.domain.candidate import CandidateState
from orchestrator.domain.mac import Mac
from orchestrator.domain.network import NetworkStatus
from orchestrator.domain.session import SessionSnapshot


class EventType(StrEnum):
    """Event types the dashboard accepts. Values are on the wire: never rename them."""

    CONNECTION_ESTABLISHED = "connection.established"
    CONNECTION_HEARTBEAT = "connection.heartbeat"
    SESSION_STATUS = "session.status"
    DEVICE_DISCOVERED = "device.discovered"
    DEVICE_STATE_CHANGED = "device.state_changed"
    NETWORK_STATUS_CHANGED = "network.status_changed"
    ERROR = "error"


class ConnectionEstablished(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """First frame of every stream."""

    message: str
    session_id: str | None = None


class SessionStatus(msgspec.Struct, frozen=True, kw_only=True):
    """A session changed; always the complete session."""

    session: SessionSnapshot


class DeviceDiscovered(msgspec.Struct, frozen=True, kw_only=True):
    """A new candidate joined the session."""

    mac: Mac
    ip: str
    rssi: int
    firmware_version: str
    in_allowlist: bool


class DeviceStateChanged(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A candidate moved; `error` says why when it failed."""

    mac: Mac
    previous_state: CandidateState
    new_state: CandidateState
    progress: int | None = None
    error: str | None = None


class ErrorRaised(msgspec.Struct, frozen=True, kw_only=True):
    """Something went wrong that a watcher should see (not tied to one request)."""

    code: str
    message: str
    retryable: bool


Payload = (
    ConnectionEstablished
    | SessionStatus
    | DeviceDiscovered
    | DeviceStateChanged
    | NetworkStatus
    | ErrorRaised
    | None
)


class Event(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    omit_defaults=True,
    # The version is the struct's tag: a defaulted field would be dropped by omit_defaults, and
    # the contract requires `"version": "1.0"` in every frame.
    tag_field="version",
    tag="1.0",
):
    """The versioned envelope of one event (contract section 4)."""

    type: EventType
    timestamp: datetime
    payload: Payload
    session_id: str | None = None
