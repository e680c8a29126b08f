"""The session lifecycle: every (state, event) pair, expiry, recovery, counts and the read model."""

from __future__ import annotations

import itertools
from datetime import timedelta

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.domain.candidate import CandidateState
from orchestrator.domain.errors import ErrorCode, OrchestratorError
from orchestrator.domain.session import (
    SESSION_TRANSITIONS,
    ClosedReason,
    SessionConfig,
    SessionCounts,
    SessionEvent,
    SessionSnapshot,
    SessionState,
    apply_session_event,
    is_expired,
    is_recoverable,
)
from tests.domain.samples import T0, make_candidate, make_session

S, E = SessionState, SessionEvent
LATER = T0 + timedelta(seconds=7)
CLOSED_ERR = ErrorCode.SESSION_ALREADY_CLOSED
INVALID = ErrorCode.INVALID_REQUEST

# The expected outcome of every pair, written out independently of SESSION_TRANSITIONS:
# a target state, or the contract code of the refusal.
EXPECTED: dict[tuple[SessionState, SessionEvent], SessionState | ErrorCode] = {
    (S.DISCOVERING, E.DISCOVERY_FINISHED): S.ACTIVE,
    (S.DISCOVERING, E.PAUSE): S.PAUSED,
    (S.DISCOVERING, E.RESUME): S.DISCOVERING,
    (S.DISCOVERING, E.STOP): S.CLOSING,
    (S.DISCOVERING, E.CLOSED): INVALID,
    (S.DISCOVERING, E.EXPIRE): S.CLOSED,
    (S.ACTIVE, E.DISCOVERY_FINISHED): S.ACTIVE,
    (S.ACTIVE, E.PAUSE): S.PAUSED,
    (S.ACTIVE, E.RESUME): S.ACTIVE,
    (S.ACTIVE, E.STOP): S.CLOSING,
    (S.ACTIVE, E.CLOSED): INVALID,
    (S.ACTIVE, E.EXPIRE): S.CLOSED,
    (S.PAUSED, E.DISCOVERY_FINISHED): S.PAUSED,
    (S.PAUSED, E.PAUSE): S.PAUSED,
    (S.PAUSED, E.RESUME): S.ACTIVE,
    (S.PAUSED, E.STOP): S.CLOSING,
    (S.PAUSED, E.CLOSED): INVALID,
    (S.PAUSED, E.EXPIRE): S.CLOSED,
    (S.CLOSING, E.DISCOVERY_FINISHED): CLOSED_ERR,
    (S.CLOSING, E.PAUSE): CLOSED_ERR,
    (S.CLOSING, E.RESUME): CLOSED_ERR,
    (S.CLOSING, E.STOP): S.CLOSING,
    (S.CLOSING, E.CLOSED): S.CLOSED,
    (S.CLOSING, E.EXPIRE): S.CLOSED,
    (S.CLOSED, E.DISCOVERY_FINISHED): CLOSED_ERR,
    (S.CLOSED, E.PAUSE): CLOSED_ERR,
    (S.CLOSED, E.RESUME): CLOSED_ERR,
    (S.CLOSED, E.STOP): S.CLOSED,
    (S.CLOSED, E.CLOSED): CLOSED_ERR,
    (S.CLOSED, E.EXPIRE): CLOSED_ERR,
}

ALL_PAIRS = list(itertools.product(SessionState, SessionEvent))
LEGAL = [(pair, out) for pair, out in EXPECTED.items() if isinstance(out, SessionState)]
ILLEGAL = [(pair, out) for pair, out in EXPECTED.items() if isinstance(out, ErrorCode)]


def _id(value: object) -> str:
    return str(value)


def test_the_expectation_covers_every_pair() -> None:
    assert set(EXPECTED) == set(ALL_PAIRS)


def test_the_table_holds_exactly_the_legal_moves() -> None:
    assert dict(LEGAL) == SESSION_TRANSITIONS


@pytest.mark.parametrize(("pair", "target"), LEGAL, ids=_id)
def test_legal_move_reaches_the_expected_state(
    pair: tuple[SessionState, SessionEvent], target: SessionState
) -> None:
    state, event = pair
    before = make_session(state)
    after = apply_session_event(before, event, LATER)
    assert after.state is target
    if target is state:
        # A self-loop is a repeated request: nothing changes, not even updated_at.
        assert after is before
    else:
        assert after.updated_at == LATER
        assert after.created_at == before.created_at
        assert after.id == before.id


@pytest.mark.parametrize(("pair", "code"), ILLEGAL, ids=_id)
def test_illegal_move_raises_the_contract_code(
    pair: tuple[SessionState, SessionEvent], code: ErrorCode
) -> None:
    state, event = pair
    with pytest.raises(OrchestratorError) as caught:
        apply_session_event(make_session(state), event, LATER)
    assert caught.value.code is code


@pytest.mark.parametrize("state", [S.DISCOVERING, S.ACTIVE, S.PAUSED])
def test_stop_records_stopped_unless_told_otherwise(state: SessionState) -> None:
    stopped = apply_session_event(make_session(state), E.STOP, LATER)
    assert stopped.closed_reason is ClosedReason.STOPPED
    discarded = apply_session_event(
        make_session(state), E.STOP, LATER, closed_reason=ClosedReason.DISCARDED
    )
    assert discarded.closed_reason is ClosedReason.DISCARDED


@pytest.mark.parametrize("state", [S.DISCOVERING, S.ACTIVE, S.PAUSED, S.CLOSING])
def test_expire_always_records_expired(state: SessionState) -> None:
    expired = apply_session_event(
        make_session(state), E.EXPIRE, LATER, closed_reason=ClosedReason.DISCARDED
    )
    assert expired.state is S.CLOSED
    assert expired.closed_reason is ClosedReason.EXPIRED


def test_closing_keeps_the_reason_the_stop_gave() -> None:
    closing = apply_session_event(make_session(S.ACTIVE), E.STOP, LATER)
    closed = apply_session_event(closing, E.CLOSED, LATER + timedelta(seconds=1))
    assert closed.state is S.CLOSED
    assert closed.closed_reason is ClosedReason.STOPPED
    assert closed.updated_at == LATER + timedelta(seconds=1)


def test_moves_other_than_stop_and_expire_record_no_reason() -> None:
    paused = apply_session_event(make_session(S.ACTIVE), E.PAUSE, LATER)
    assert paused.closed_reason is None
    active = apply_session_event(make_session(S.DISCOVERING), E.DISCOVERY_FINISHED, LATER)
    assert active.closed_reason is None


def test_discovery_finishing_while_paused_resumes_into_active() -> None:
    session = make_session(S.DISCOVERING)
    for event in (E.PAUSE, E.DISCOVERY_FINISHED, E.RESUME):
        session = apply_session_event(session, event, LATER)
    assert session.state is S.ACTIVE


@pytest.mark.parametrize(
    ("state", "is_open"),
    [
        (S.DISCOVERING, True),
        (S.ACTIVE, True),
        (S.PAUSED, True),
        (S.CLOSING, False),
        (S.CLOSED, False),
    ],
)
def test_is_open(state: SessionState, is_open: bool) -> None:
    assert make_session(state).is_open is is_open


class TestIsExpired:
    def test_a_session_without_a_deadline_never_expires(self) -> None:
        assert not is_expired(make_session(S.ACTIVE), T0 + timedelta(days=3650))

    def test_expiry_boundary_is_inclusive(self) -> None:
        deadline = T0 + timedelta(minutes=30)
        session = make_session(S.ACTIVE, expires_at=deadline)
        assert not is_expired(session, deadline - timedelta(microseconds=1))
        assert is_expired(session, deadline)
        assert is_expired(session, deadline + timedelta(seconds=1))

    @pytest.mark.parametrize("state", [S.DISCOVERING, S.PAUSED])
    def test_every_open_state_can_expire(self, state: SessionState) -> None:
        deadline = T0 + timedelta(minutes=30)
        assert is_expired(make_session(state, expires_at=deadline), deadline)

    def test_a_session_closed_by_expiry_stays_expired(self) -> None:
        expired = apply_session_event(make_session(S.ACTIVE), E.EXPIRE, LATER)
        assert is_expired(expired, LATER)
        assert is_expired(expired, T0 - timedelta(days=1))

    def test_a_stopped_session_past_its_deadline_is_not_expired(self) -> None:
        session = make_session(S.ACTIVE, expires_at=T0 + timedelta(minutes=1))
        closing = apply_session_event(session, E.STOP, LATER)
        closed = apply_session_event(closing, E.CLOSED, LATER)
        assert not is_expired(closed, T0 + timedelta(hours=1))


class TestIsRecoverable:
    @pytest.mark.parametrize("state", [S.DISCOVERING, S.ACTIVE, S.PAUSED, S.CLOSING])
    def test_an_unfinished_session_of_an_earlier_run_is_recoverable(
        self, state: SessionState
    ) -> None:
        assert is_recoverable(make_session(state, run_id="run_old"), "run_new")

    @pytest.mark.parametrize("state", list(SessionState))
    def test_a_session_of_this_run_is_not_recoverable(self, state: SessionState) -> None:
        assert not is_recoverable(make_session(state, run_id="run_new"), "run_new")

    def test_a_closed_session_is_not_recoverable(self) -> None:
        assert not is_recoverable(make_session(S.CLOSED, run_id="run_old"), "run_new")


C = CandidateState


class TestSessionCounts:
    def test_no_candidates_count_zero(self) -> None:
        assert SessionCounts.of([]) == SessionCounts(
            device_count=0, provisioned_count=0, verified_count=0, failed_count=0
        )

    def test_one_of_each_state(self) -> None:
        candidates = [
            make_candidate(state, mac=f"AA:BB:CC:DD:EE:{i:02X}")
            for i, state in enumerate(CandidateState)
        ]
        assert SessionCounts.of(candidates) == SessionCounts(
            device_count=6, provisioned_count=3, verified_count=1, failed_count=1
        )

    def test_counts_accept_a_one_shot_iterator(self) -> None:
        candidates = (make_candidate(C.VERIFIED) for _ in range(2))
        counts = SessionCounts.of(candidates)
        assert (counts.device_count, counts.verified_count) == (2, 2)

    @settings(max_examples=100, database=None)
    @given(states=st.lists(st.sampled_from(CandidateState), max_size=30))
    def test_counts_follow_the_states(self, states: list[CandidateState]) -> None:
        counts = SessionCounts.of(make_candidate(s) for s in states)
        assert counts.device_count == len(states)
        assert counts.provisioned_count == sum(
            s in {C.PROVISIONED, C.VERIFYING, C.VERIFIED} for s in states
        )
        assert counts.verified_count == sum(s is C.VERIFIED for s in states)
        assert counts.failed_count == sum(s is C.FAILED for s in states)


class TestSnapshot:
    def test_counts_and_fields_come_from_the_session_and_its_candidates(self) -> None:
        session = make_session(S.PAUSED, expires_at=T0 + timedelta(hours=1))
        candidates = [
            make_candidate(C.VERIFIED, mac="AA:BB:CC:DD:EE:01"),
            make_candidate(C.FAILED, mac="AA:BB:CC:DD:EE:02"),
            make_candidate(C.PROVISIONED, mac="AA:BB:CC:DD:EE:03"),
            make_candidate(C.DISCOVERED, mac="AA:BB:CC:DD:EE:04"),
        ]
        snapshot = SessionSnapshot.of(session, candidates)
        assert snapshot == SessionSnapshot(
            id=session.id,
            state=S.PAUSED,
            target_ssid=session.target_ssid,
            created_at=session.created_at,
            updated_at=session.updated_at,
            expires_at=session.expires_at,
            config=session.config,
            device_count=4,
            provisioned_count=2,
            verified_count=1,
            failed_count=1,
        )

    def test_expires_at_is_omitted_when_unset_and_nothing_is_null(self) -> None:
        raw = msgspec.json.encode(SessionSnapshot.of(make_session(S.ACTIVE), []))
        assert b"expires_at" not in raw
        assert b"null" not in raw
        decoded = msgspec.json.decode(raw)
        assert isinstance(decoded, dict)
        assert "expires_at" not in decoded
        assert None not in decoded.values()
        assert decoded["state"] == "active"
        assert decoded["device_count"] == 0
        assert decoded["config"] == {
            "discovery_timeout_seconds": 60,
            "provisioning_timeout_seconds": 120,
            "verification_timeout_seconds": 90,
        }

    def test_expires_at_is_sent_when_set(self) -> None:
        session = make_session(S.ACTIVE, expires_at=T0 + timedelta(hours=1))
        decoded = msgspec.json.decode(msgspec.json.encode(SessionSnapshot.of(session, [])))
        assert isinstance(decoded, dict)
        assert decoded["expires_at"] == "2025-01-02T04:04:05Z"

    def test_the_target_password_has_no_field_to_leak_through(self) -> None:
        fields = set(SessionSnapshot.__struct_fields__) | set(make_session().__struct_fields__)
        assert not any("password" in name for name in fields)


class TestSessionConfig:
    def test_defaults_follow_the_contract(self) -> None:
        assert SessionConfig() == SessionConfig(
            discovery_timeout_seconds=60,
            provisioning_timeout_seconds=120,
            verification_timeout_seconds=90,
        )

    def test_unknown_fields_and_non_positive_timeouts_are_refused(self) -> None:
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(b'{"discovery_timeout_s": 5}', type=SessionConfig)
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(b'{"discovery_timeout_seconds": 0}', type=SessionConfig)
        assert msgspec.json.decode(
            b'{"verification_timeout_seconds": 5}', type=SessionConfig
        ) == SessionConfig(verification_timeout_seconds=5)
