"""The batch session lifecycle: one transition table, and the session's read model.

A session groups the work of one batch. Its counts are never stored: they are derived from the
candidates every time (`SessionCounts.of`), so they cannot disagree with the devices.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated

import msgspec

from orchestrator.domain.candidate import Candidate, CandidateState
from orchestrator.domain.errors import ErrorCode, OrchestratorError


class SessionState(StrEnum):
    """Persisted and streamed: never rename a value."""

    DISCOVERING = "discovering"
    ACTIVE = "active"
    PAUSED = "paused"
    CLOSING = "closing"
    CLOSED = "closed"


class SessionEvent(StrEnum):
    """What can happen to a session."""

    DISCOVERY_FINISHED = "discovery_finished"
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    CLOSED = "closed"
    EXPIRE = "expire"


class ClosedReason(StrEnum):
    """Why a session ended; persisted."""

    STOPPED = "stopped"
    EXPIRED = "expired"
    DISCARDED = "discarded"


_S, _E = SessionState, SessionEvent
_OPEN = (_S.DISCOVERING, _S.ACTIVE, _S.PAUSED)

SESSION_TRANSITIONS: dict[tuple[SessionState, SessionEvent], SessionState] = {
    (_S.DISCOVERING, _E.DISCOVERY_FINISHED): _S.ACTIVE,
    # Discovery may finish while paused; the session simply resumes into `active`.
    (_S.PAUSED, _E.DISCOVERY_FINISHED): _S.PAUSED,
    (_S.ACTIVE, _E.DISCOVERY_FINISHED): _S.ACTIVE,
    (_S.DISCOVERING, _E.PAUSE): _S.PAUSED,
    (_S.ACTIVE, _E.PAUSE): _S.PAUSED,
    (_S.PAUSED, _E.PAUSE): _S.PAUSED,
    (_S.PAUSED, _E.RESUME): _S.ACTIVE,
    (_S.ACTIVE, _E.RESUME): _S.ACTIVE,
    (_S.DISCOVERING, _E.RESUME): _S.DISCOVERING,
    **{(state, _E.STOP): _S.CLOSING for state in _OPEN},
    (_S.CLOSING, _E.STOP): _S.CLOSING,
    (_S.CLOSED, _E.STOP): _S.CLOSED,
    (_S.CLOSING, _E.CLOSED): _S.CLOSED,
    **{(state, _E.EXPIRE): _S.CLOSED for state in (*_OPEN, _S.CLOSING)},
}
"""Every legal move. Self-loops make repeated requests harmless (every POST is idempotent)."""


TimeoutSeconds = Annotated[int, msgspec.Meta(ge=1, le=86_400)]


class SessionConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Per-session timeouts, as the client sent them (contract SessionConfig)."""

    discovery_timeout_seconds: TimeoutSeconds = 60
    provisioning_timeout_seconds: TimeoutSeconds = 120
    verification_timeout_seconds: TimeoutSeconds = 90


class CloudTarget(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Where the session's devices register themselves (ThingsBoard device provisioning).
    The provisioning key and secret are not here: they are sealed beside the session."""

    provider: str
    host: str
    port: int
    device_name_prefix: str | None = None


class Session(msgspec.Struct, frozen=True, kw_only=True):
    """A batch session. The target Wi-Fi password is deliberately not part of it."""

    id: str
    state: SessionState
    target_ssid: str
    config: SessionConfig
    created_at: datetime
    updated_at: datetime
    run_id: str
    """The orchestrator run that drives this session; another run's open session is recoverable."""
    max_retries: int = 3
    expires_at: datetime | None = None
    closed_reason: ClosedReason | None = None
    cloud: CloudTarget | None = None

    @property
    def is_open(self) -> bool:
        """Open sessions hold the onboarding network and may receive devices."""
        return self.state in _OPEN


def apply_session_event(
    session: Session,
    event: SessionEvent,
    now: datetime,
    *,
    closed_reason: ClosedReason | None = None,
) -> Session:
    """Return `session` after `event`, or raise the contract error for an illegal move."""
    target = SESSION_TRANSITIONS.get((session.state, event))
    if target is None:
        if session.state in (SessionState.CLOSING, SessionState.CLOSED):
            raise OrchestratorError(
                ErrorCode.SESSION_ALREADY_CLOSED,
                f"session {session.id} is {session.state}; start a new batch",
            )
        raise OrchestratorError(
            ErrorCode.INVALID_REQUEST,
            f"cannot {event} a session that is {session.state}",
        )
    if target == session.state:
        return session
    if event is SessionEvent.EXPIRE:
        # A session already closing keeps the operator's reason: it was stopped, not expired.
        closed_reason = session.closed_reason or ClosedReason.EXPIRED
    elif event is SessionEvent.STOP:
        closed_reason = closed_reason or ClosedReason.STOPPED
    return msgspec.structs.replace(
        session,
        state=target,
        updated_at=now,
        closed_reason=closed_reason if closed_reason is not None else session.closed_reason,
    )


def is_expired(session: Session, now: datetime) -> bool:
    """Whether the session's lifetime has run out (or it was closed by expiry)."""
    if session.closed_reason is ClosedReason.EXPIRED:
        return True
    return session.is_open and session.expires_at is not None and now >= session.expires_at


def is_recoverable(session: Session, run_id: str) -> bool:
    """An unfinished session left behind by an earlier run of the orchestrator."""
    return session.state is not SessionState.CLOSED and session.run_id != run_id


class SessionCounts(msgspec.Struct, frozen=True, kw_only=True):
    """Counts derived from the candidates, never stored."""

    device_count: int = 0
    provisioned_count: int = 0
    verified_count: int = 0
    failed_count: int = 0

    @classmethod
    def of(cls, candidates: Iterable[Candidate]) -> SessionCounts:
        """Count `candidates`; provisioned means credentials delivered and not failed since."""
        return cls.of_states(Counter(c.state for c in candidates))

    @classmethod
    def of_states(cls, states: Mapping[CandidateState, int]) -> SessionCounts:
        """The counts of candidates tallied by state (a running tally costs O(1) per change,
        where recounting a big session on every change would not)."""
        return cls(
            device_count=sum(states.values()),
            provisioned_count=sum(states.get(s, 0) for s in _DELIVERED),
            verified_count=states.get(CandidateState.VERIFIED, 0),
            failed_count=states.get(CandidateState.FAILED, 0),
        )


_DELIVERED = frozenset(
    {CandidateState.PROVISIONED, CandidateState.VERIFYING, CandidateState.VERIFIED}
)


class SessionSnapshot(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The complete session as clients see it (contract BatchProvisioningSession)."""

    id: str
    state: SessionState
    target_ssid: str
    created_at: datetime
    updated_at: datetime
    device_count: int
    provisioned_count: int
    verified_count: int
    failed_count: int
    expires_at: datetime | None = None
    config: SessionConfig | None = None
    cloud: CloudTarget | None = None
    """Set when the session's devices register with a cloud (never its key or secret)."""

    @classmethod
    def of(cls, session: Session, candidates: Iterable[Candidate]) -> SessionSnapshot:
        """The read model of `session` with counts derived from `candidates`."""
        return cls.counted(session, SessionCounts.of(candidates))

    @classmethod
    def counted(cls, session: Session, counts: SessionCounts) -> SessionSnapshot:
        """The read model of `session` with `counts`."""
        return cls(
            id=session.id,
            state=session.state,
            target_ssid=session.target_ssid,
            created_at=session.created_at,
            updated_at=session.updated_at,
            expires_at=session.expires_at,
            config=session.config,
            cloud=session.cloud,
            device_count=counts.device_count,
            provisioned_count=counts.provisioned_count,
            verified_count=counts.verified_count,
            failed_count=counts.failed_count,
        )
