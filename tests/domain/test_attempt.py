"""Attempts: the transition table, resume plans and catching a candidate up."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.domain.attempt import (
    ATTEMPT_TRANSITIONS,
    AttemptPhase,
    IllegalAttemptMoveError,
    Resume,
    advance_attempt,
    catch_up,
    resume_plan,
)
from orchestrator.domain.candidate import (
    CANDIDATE_TRANSITIONS,
    CandidateEvent,
    CandidateState,
)
from tests.storage.samples import at, make_attempt

IN_FLIGHT = (CandidateState.PROVISIONING, CandidateState.PROVISIONED, CandidateState.VERIFYING)


@given(st.sampled_from(AttemptPhase), st.sampled_from(AttemptPhase))
def test_only_table_moves_are_allowed(source: AttemptPhase, target: AttemptPhase) -> None:
    attempt = make_attempt(phase=source)
    if (source, target) in ATTEMPT_TRANSITIONS:
        moved = advance_attempt(attempt, target, at(5), failure_reason="x")
        assert moved.phase is target
        assert moved.updated_at == at(5)
        assert (moved.failure_reason is not None) == (target is AttemptPhase.FAILED)
    else:
        with pytest.raises(IllegalAttemptMoveError):
            advance_attempt(attempt, target, at(5))


def test_delivery_time_is_recorded_once() -> None:
    delivering = advance_attempt(make_attempt(), AttemptPhase.DELIVERING, at(1))
    assert delivering.delivered_at is None
    delivered = advance_attempt(delivering, AttemptPhase.DELIVERED, at(2))
    verified = advance_attempt(delivered, AttemptPhase.VERIFIED, at(3))
    assert verified.delivered_at == at(2)
    assert verified.is_finished


@pytest.mark.parametrize(
    ("state", "phase", "plan"),
    [
        (CandidateState.PROVISIONING, None, Resume.START),
        (CandidateState.PROVISIONING, AttemptPhase.PREPARED, Resume.START),
        (CandidateState.PROVISIONING, AttemptPhase.DELIVERING, Resume.RECHECK),
        (CandidateState.PROVISIONING, AttemptPhase.DELIVERED, Resume.VERIFY),
        (CandidateState.PROVISIONING, AttemptPhase.FAILED, Resume.START),
        (CandidateState.PROVISIONED, AttemptPhase.DELIVERED, Resume.VERIFY),
        (CandidateState.VERIFYING, AttemptPhase.DELIVERED, Resume.VERIFY),
        (CandidateState.VERIFYING, AttemptPhase.VERIFIED, Resume.VERIFIED),
        (CandidateState.PROVISIONED, None, Resume.RECHECK),
        (CandidateState.VERIFYING, AttemptPhase.FAILED, Resume.RECHECK),
    ],
)
def test_resume_plans(state: CandidateState, phase: AttemptPhase | None, plan: Resume) -> None:
    attempt = None if phase is None else make_attempt(phase=phase)
    assert resume_plan(state, attempt) is plan


@given(st.sampled_from(IN_FLIGHT), st.sampled_from(AttemptPhase) | st.none())
def test_a_delivery_that_may_have_happened_is_never_simply_restarted(
    state: CandidateState, phase: AttemptPhase | None
) -> None:
    """The promise behind crash-resume: credentials of an attempt that may have reached the
    device are never followed by a fresh delivery without asking the device first."""
    attempt = None if phase is None else make_attempt(phase=phase)
    plan = resume_plan(state, attempt)
    if phase in (AttemptPhase.DELIVERING, AttemptPhase.DELIVERED):
        assert plan in (Resume.RECHECK, Resume.VERIFY)
    if plan is Resume.START:
        assert state is CandidateState.PROVISIONING


@given(st.sampled_from(IN_FLIGHT), st.sampled_from([*IN_FLIGHT, CandidateState.VERIFIED]))
def test_catch_up_walks_legal_moves_to_the_target(
    current: CandidateState, target: CandidateState
) -> None:
    state = current
    for event in catch_up(current, target):
        state = CANDIDATE_TRANSITIONS[state, event]
    order = [*IN_FLIGHT, CandidateState.VERIFIED]
    assert state is (target if order.index(target) > order.index(current) else current)


def test_catch_up_from_provisioning_to_verified() -> None:
    assert catch_up(CandidateState.PROVISIONING, CandidateState.VERIFIED) == (
        CandidateEvent.DELIVERED,
        CandidateEvent.VERIFY,
        CandidateEvent.VERIFIED,
    )
