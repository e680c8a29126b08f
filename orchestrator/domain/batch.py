"""Batch-level rules: which candidates a request may move, decided over the whole session."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Set

import msgspec

from orchestrator.domain.candidate import (
    SKIPPED_REASON,
    Candidate,
    CandidateEvent,
    CandidateState,
    Failure,
)
from orchestrator.domain.errors import ErrorCode, OrchestratorError
from orchestrator.domain.mac import Mac
from orchestrator.domain.session import Session, SessionState

_IN_FLIGHT = frozenset(
    {CandidateState.PROVISIONING, CandidateState.PROVISIONED, CandidateState.VERIFYING}
)


class ProvisionAllPlan(msgspec.Struct, frozen=True, kw_only=True):
    """The candidates provision-all starts, and the discovered ones it leaves alone."""

    start: tuple[Mac, ...]
    skipped: tuple[Mac, ...]


def plan_provision_all(
    candidates: Iterable[Candidate], allowlisted: Set[Mac], *, only_allowlisted: bool
) -> ProvisionAllPlan:
    """Start every discovered candidate that is admitted; in-flight and finished ones are not
    touched, so repeating the request starts nothing twice."""
    start: list[Mac] = []
    skipped: list[Mac] = []
    for candidate in candidates:
        if candidate.state is not CandidateState.DISCOVERED:
            continue
        if only_allowlisted and candidate.mac not in allowlisted:
            skipped.append(candidate.mac)
        else:
            start.append(candidate.mac)
    return ProvisionAllPlan(start=tuple(start), skipped=tuple(skipped))


def require_accepting_work(session: Session) -> None:
    """Provisioning work may start only while the session is open and not paused."""
    if session.state in (SessionState.CLOSING, SessionState.CLOSED):
        raise OrchestratorError(
            ErrorCode.SESSION_ALREADY_CLOSED, f"session {session.id} is {session.state}"
        )
    if session.state is SessionState.PAUSED:
        raise OrchestratorError(
            ErrorCode.INVALID_REQUEST, f"session {session.id} is paused; resume it first"
        )


def provision_decision(candidate: Candidate, *, in_allowlist: bool) -> CandidateEvent | None:
    """The event a single-device provision request causes, or None when it is already under way
    (a repeated request is harmless)."""
    if not in_allowlist:
        raise OrchestratorError(
            ErrorCode.DEVICE_NOT_IN_ALLOWLIST,
            f"device {candidate.mac} is not on the allowlist; add it or pair it by code first",
        )
    if candidate.state in _IN_FLIGHT:
        return None
    if candidate.state is CandidateState.DISCOVERED:
        return CandidateEvent.PROVISION
    hint = "use retry" if candidate.state is CandidateState.FAILED else "nothing left to do"
    raise OrchestratorError(
        ErrorCode.DEVICE_INVALID_STATE,
        f"device {candidate.mac} is {candidate.state}; {hint}",
    )


def retry_decision(candidate: Candidate, *, in_allowlist: bool) -> CandidateEvent | None:
    """RETRY for a failed device, None when a retry is already under way.

    A retry is a new provisioning attempt, so it needs the allowlist like a first one (else
    skip-then-retry would hand credentials to a device nobody admitted).
    """
    if candidate.state in _IN_FLIGHT:
        return None
    if not in_allowlist:
        raise OrchestratorError(
            ErrorCode.DEVICE_NOT_IN_ALLOWLIST,
            f"device {candidate.mac} is not on the allowlist; add it before retrying",
        )
    return CandidateEvent.RETRY


def is_in_flight(candidate: Candidate) -> bool:
    """Between the provision request and the verdict."""
    return candidate.state in _IN_FLIGHT


class ReportedFailure(enum.Enum):
    """What a failure reason reported by a device (back on the onboarding network) does."""

    FAIL = "fail"
    """The attempt was in flight: it failed, for the device's reason."""
    AMEND = "amend"
    """The attempt already failed (a timeout): the device's reason is the better one."""
    IGNORE = "ignore"


def reported_failure(candidate: Candidate, failure: Failure) -> ReportedFailure:
    """Decide what the device's own failure report does to its candidate."""
    if candidate.state in _IN_FLIGHT:
        return ReportedFailure.FAIL
    if (
        candidate.state is CandidateState.FAILED
        and candidate.failure is not None
        and candidate.failure.reason not in {SKIPPED_REASON, failure.reason}
    ):
        return ReportedFailure.AMEND
    return ReportedFailure.IGNORE
