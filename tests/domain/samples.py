"""Sample sessions and candidates for the domain tests: plain values, no fixtures."""

from __future__ import annotations

from datetime import UTC, datetime

from orchestrator.domain.candidate import Candidate, CandidateState, Failure
from orchestrator.domain.mac import Mac
from orchestrator.domain.session import Session, SessionConfig, SessionState

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
RUN_ID = "run_current"


def make_session(
    state: SessionState = SessionState.ACTIVE,
    *,
    expires_at: datetime | None = None,
    run_id: str = RUN_ID,
    max_retries: int = 3,
) -> Session:
    """A session in `state`, created and last updated at T0."""
    return Session(
        id="sess_abc123",
        state=state,
        target_ssid="Factory-WiFi",
        config=SessionConfig(),
        created_at=T0,
        updated_at=T0,
        run_id=run_id,
        max_retries=max_retries,
        expires_at=expires_at,
    )


def make_candidate(
    state: CandidateState = CandidateState.DISCOVERED,
    *,
    mac: str = "AA:BB:CC:DD:EE:01",
    retry_count: int = 0,
    failure: Failure | None = None,
) -> Candidate:
    """A candidate in `state`, discovered and last updated at T0."""
    if state is CandidateState.FAILED and failure is None:
        failure = Failure(reason="auth_error", message="the device refused the password")
    return Candidate(
        session_id="sess_abc123",
        mac=Mac(mac),
        ip="192.168.4.10",
        state=state,
        rssi=-52,
        firmware_version="1.4.2",
        discovered_at=T0,
        updated_at=T0,
        retry_count=retry_count,
        failure=failure,
    )
