"""Sample domain values for the storage tests: plain constructors, fixed times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrator.domain.allowlist import AllowlistEntry
from orchestrator.domain.apikey import ApiKeyRecord
from orchestrator.domain.attempt import Attempt, AttemptPhase
from orchestrator.domain.audit import AuditEntry, Outcome
from orchestrator.domain.candidate import Candidate, CandidateState, Failure
from orchestrator.domain.events import DeviceDiscovered, Event, EventType
from orchestrator.domain.mac import Mac
from orchestrator.domain.pairing import PAIRING_TTL, DeviceRecord, PairingSession
from orchestrator.domain.session import ClosedReason, Session, SessionConfig, SessionState

T0 = datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
"""A start time with microseconds, so a lossy timestamp codec shows."""


def at(seconds: float) -> datetime:
    """T0 plus `seconds`."""
    return T0 + timedelta(seconds=seconds)


def mac(n: int) -> Mac:
    """A distinct canonical MAC per `n`."""
    return Mac(f"AA:BB:CC:DD:{n // 256:02X}:{n % 256:02X}")


def make_session(
    session_id: str = "sess_1",
    *,
    state: SessionState = SessionState.ACTIVE,
    created_at: datetime = T0,
    updated_at: datetime | None = None,
    expires_at: datetime | None = None,
) -> Session:
    """A session; a closed one gets a closed reason."""
    return Session(
        id=session_id,
        state=state,
        target_ssid="Factory-WiFi",
        config=SessionConfig(discovery_timeout_seconds=30),
        created_at=created_at,
        updated_at=created_at if updated_at is None else updated_at,
        run_id="run_1",
        max_retries=2,
        expires_at=expires_at,
        closed_reason=ClosedReason.STOPPED if state is SessionState.CLOSED else None,
    )


def make_candidate(
    session_id: str = "sess_1",
    n: int = 1,
    *,
    state: CandidateState = CandidateState.DISCOVERED,
    discovered_at: datetime = T0,
    failure: Failure | None = None,
) -> Candidate:
    """A candidate with MAC `mac(n)`."""
    return Candidate(
        session_id=session_id,
        mac=mac(n),
        ip=f"192.168.4.{10 + n % 200}",
        state=state,
        rssi=-40 - n % 40,
        firmware_version="1.4.2",
        discovered_at=discovered_at,
        updated_at=discovered_at,
        failure=failure,
    )


def make_attempt(
    session_id: str = "sess_1",
    n: int = 1,
    *,
    number: int = 1,
    phase: AttemptPhase = AttemptPhase.PREPARED,
) -> Attempt:
    """Attempt `number` at device `mac(n)`."""
    token = mac(n).replace(":", "").lower()
    return Attempt(
        session_id=session_id,
        mac=mac(n),
        number=number,
        nonce=f"nonce-{session_id}-{token}-{number}",
        phase=phase,
        strategy="esp32-cam",
        device_name=f"cam-{token}",
        username=f"dev-{token}",
        status_topic=f"delicasa/devices/{token}/status",
        created_at=T0,
        updated_at=T0,
    )


def make_entry(n: int = 1, *, used_at: datetime | None = None) -> AllowlistEntry:
    """An allowlist entry for `mac(n)`."""
    return AllowlistEntry(
        mac=mac(n),
        added_at=T0,
        description=f"device {n}",
        container_id=f"crate-{n}",
        used_at=used_at,
    )


def make_device(device_id: str = "ZM-ICU-MON-04", *, label: str = "ICU 4") -> DeviceRecord:
    """A seed 000 device record."""
    return DeviceRecord(
        device_id=device_id,
        device_label=label,
        server_url="https://tb.example/",
        provisioning_status="pending",
        created_at=T0,
        updated_at=at(1),
    )


def make_pairing(
    code: str = "X7Y9Z2",
    *,
    expires_at: datetime = T0 + PAIRING_TTL,
    device_id: str = "ZM-ICU-MON-04",
) -> PairingSession:
    """A seed 000 pairing session."""
    return PairingSession(
        pairing_code=code,
        device_id=device_id,
        device_ip="10.1.50.104",
        created_at=T0,
        expires_at=expires_at,
    )


def make_audit(
    action: str = "session.create",
    *,
    when: datetime = T0,
    device: Mac | None = None,
    outcome: Outcome = Outcome.OK,
) -> AuditEntry:
    """An audit entry."""
    return AuditEntry(
        at=when,
        actor="key_1",
        action=action,
        outcome=outcome,
        session_id="sess_1",
        mac=device,
        correlation_id="corr_1",
        detail="sample",
    )


def make_event(n: int = 1, *, session_id: str | None = "sess_1") -> Event:
    """A device.discovered event for `mac(n)`."""
    return Event(
        type=EventType.DEVICE_DISCOVERED,
        timestamp=at(n),
        session_id=session_id,
        payload=DeviceDiscovered(
            mac=mac(n), ip="192.168.4.10", rssi=-50, firmware_version="1.0", in_allowlist=True
        ),
    )


def make_key(key_id: str = "key_1", *, created_at: datetime = T0) -> ApiKeyRecord:
    """An API key record (a hash, never a key)."""
    return ApiKeyRecord(
        id=key_id, name=f"tablet {key_id}", key_hash="0" * 64, created_at=created_at
    )
