"""Event envelopes encode to the shapes of contract section 4."""

from __future__ import annotations

import msgspec

from orchestrator.domain.candidate import CandidateState
from orchestrator.domain.events import (
    ConnectionEstablished,
    DeviceStateChanged,
    Event,
    EventType,
    SessionStatus,
)
from orchestrator.domain.mac import parse_mac
from orchestrator.domain.session import SessionSnapshot
from tests.domain.samples import T0, make_session


def _decoded(event: Event) -> dict[str, object]:
    decoded = msgspec.json.decode(msgspec.json.encode(event))
    assert isinstance(decoded, dict)
    return decoded


def test_event_type_values_are_the_ones_the_dashboard_accepts() -> None:
    assert {t.value for t in EventType} == {
        "connection.established",
        "connection.heartbeat",
        "session.status",
        "device.discovered",
        "device.state_changed",
        "network.status_changed",
        "error",
    }


def test_the_heartbeat_payload_is_the_one_null() -> None:
    heartbeat = Event(type=EventType.CONNECTION_HEARTBEAT, timestamp=T0, payload=None)
    assert msgspec.json.encode(heartbeat).startswith(b'{"version":"1.0",')
    assert _decoded(heartbeat) == {
        "type": "connection.heartbeat",
        "timestamp": "2025-01-02T03:04:05Z",
        "payload": None,
        "version": "1.0",
    }


def test_optional_fields_are_omitted() -> None:
    event = Event(
        type=EventType.CONNECTION_ESTABLISHED,
        timestamp=T0,
        payload=ConnectionEstablished(message="connected"),
    )
    raw = msgspec.json.encode(event)
    assert b"null" not in raw
    assert b"session_id" not in raw
    assert _decoded(event)["payload"] == {"message": "connected"}


def test_state_changes_carry_progress_and_error_only_when_given() -> None:
    mac = parse_mac("aabbccddee01")
    bare = DeviceStateChanged(
        mac=mac, previous_state=CandidateState.DISCOVERED, new_state=CandidateState.PROVISIONING
    )
    assert msgspec.to_builtins(bare) == {
        "mac": "AA:BB:CC:DD:EE:01",
        "previous_state": "discovered",
        "new_state": "provisioning",
    }
    failed = DeviceStateChanged(
        mac=mac,
        previous_state=CandidateState.PROVISIONING,
        new_state=CandidateState.FAILED,
        progress=0,
        error="no answer",
    )
    assert msgspec.to_builtins(failed)["error"] == "no answer"
    assert msgspec.to_builtins(failed)["progress"] == 0


def test_session_status_carries_the_complete_session() -> None:
    snapshot = SessionSnapshot.of(make_session(), [])
    event = Event(
        type=EventType.SESSION_STATUS,
        timestamp=T0,
        payload=SessionStatus(session=snapshot),
        session_id=snapshot.id,
    )
    decoded = _decoded(event)
    assert decoded["session_id"] == "sess_abc123"
    payload = decoded["payload"]
    assert isinstance(payload, dict)
    assert payload["session"] == msgspec.to_builtins(snapshot)
    assert {"id", "state", "device_count", "failed_count"} <= set(payload["session"])
    assert decoded["version"] == "1.0"
