"""Provisioning attempts: one set of credentials issued to one device, persisted before and
after every step so a restart knows exactly where each device was.

A candidate may need several attempts (an operator retry, or a resume that finds the device
never received its credentials); each has its own nonce, so a status message proves one
attempt and no other.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec

from orchestrator.domain.candidate import CandidateEvent, CandidateState
from orchestrator.domain.mac import Mac


class AttemptPhase(StrEnum):
    """Persisted: never rename a value."""

    PREPARED = "prepared"
    """Nonce and broker account issued; nothing sent to the device yet."""
    DELIVERING = "delivering"
    """The credentials request may be on its way: the device may or may not have them."""
    DELIVERED = "delivered"
    """The device acknowledged the credentials; waiting for its online status."""
    VERIFIED = "verified"
    FAILED = "failed"


_P = AttemptPhase

ATTEMPT_TRANSITIONS: frozenset[tuple[AttemptPhase, AttemptPhase]] = frozenset(
    {
        (_P.PREPARED, _P.DELIVERING),
        (_P.DELIVERING, _P.DELIVERED),
        (_P.DELIVERED, _P.VERIFIED),
        (_P.PREPARED, _P.FAILED),
        (_P.DELIVERING, _P.FAILED),
        (_P.DELIVERED, _P.FAILED),
    }
)
"""Every legal move of an attempt; anything else is a bug in the engine."""


class IllegalAttemptMoveError(Exception):
    """The engine tried to move an attempt along an edge the table does not have."""


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    """One attempt. Holds no secret: the broker password lives only in the delivery."""

    session_id: str
    mac: Mac
    number: int
    """1 for the first attempt at this device in this session, then 2, 3, ..."""
    nonce: str
    phase: AttemptPhase
    strategy: str
    """The family strategy that runs it (its name)."""
    device_name: str
    username: str
    """The device's broker account."""
    status_topic: str
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None = None
    failure_reason: str | None = None

    @property
    def is_finished(self) -> bool:
        """Verified or failed: a new attempt is needed to go on."""
        return self.phase in (AttemptPhase.VERIFIED, AttemptPhase.FAILED)


def advance_attempt(
    attempt: Attempt, phase: AttemptPhase, now: datetime, *, failure_reason: str | None = None
) -> Attempt:
    """`attempt` moved to `phase`, or IllegalAttemptMoveError."""
    if (attempt.phase, phase) not in ATTEMPT_TRANSITIONS:
        raise IllegalAttemptMoveError(
            f"attempt {attempt.number} of {attempt.mac} cannot go from {attempt.phase} to {phase}"
        )
    delivered_at = now if phase is AttemptPhase.DELIVERED else attempt.delivered_at
    return msgspec.structs.replace(
        attempt,
        phase=phase,
        updated_at=now,
        delivered_at=delivered_at,
        failure_reason=failure_reason if phase is AttemptPhase.FAILED else None,
    )


class Resume(StrEnum):
    """What the engine does with an in-flight device it is handed."""

    START = "start"
    """Issue a new attempt (none yet, the last one finished, or it never left us)."""
    RECHECK = "recheck"
    """The device may hold credentials: ask it before sending anything again."""
    VERIFY = "verify"
    """The device holds this attempt's credentials: wait for its proof."""
    VERIFIED = "verified"
    """The proof was already recorded; only the candidate lags behind."""


def resume_plan(state: CandidateState, attempt: Attempt | None) -> Resume:
    """Where an in-flight candidate (`provisioning`, `provisioned` or `verifying`) continues,
    given its latest attempt. Never sends credentials of an attempt that may have reached
    the device (DELIVERING is re-checked first)."""
    if attempt is None or attempt.phase is AttemptPhase.PREPARED:
        # Nothing was sent; a provisioned candidate without a delivery on record is
        # impossible, but asking the device first is the safe way out of it.
        return Resume.START if state is CandidateState.PROVISIONING else Resume.RECHECK
    match attempt.phase:
        case AttemptPhase.DELIVERING:
            return Resume.RECHECK
        case AttemptPhase.DELIVERED:
            return Resume.VERIFY
        case AttemptPhase.VERIFIED:
            return Resume.VERIFIED
        case _:  # FAILED: a retry moved the candidate back to provisioning after it
            return Resume.START if state is CandidateState.PROVISIONING else Resume.RECHECK


_PATH_TO: dict[CandidateState, tuple[CandidateEvent, ...]] = {
    CandidateState.PROVISIONING: (),
    CandidateState.PROVISIONED: (CandidateEvent.DELIVERED,),
    CandidateState.VERIFYING: (CandidateEvent.DELIVERED, CandidateEvent.VERIFY),
    CandidateState.VERIFIED: (
        CandidateEvent.DELIVERED,
        CandidateEvent.VERIFY,
        CandidateEvent.VERIFIED,
    ),
}


def catch_up(current: CandidateState, target: CandidateState) -> tuple[CandidateEvent, ...]:
    """The candidate events that take an in-flight candidate from `current` to `target`
    along the happy path (empty when it is already there or beyond)."""
    done = _PATH_TO.get(current)
    wanted = _PATH_TO.get(target)
    if done is None or wanted is None or len(wanted) <= len(done):
        return ()
    return wanted[len(done) :]
