"""The candidate lifecycle: every (state, event) pair, the retry budget, skip and timestamps."""

from __future__ import annotations

import itertools
from datetime import timedelta

import msgspec
import pytest

from orchestrator.domain.candidate import (
    CANDIDATE_TRANSITIONS,
    PROGRESS,
    SKIPPED_REASON,
    Candidate,
    CandidateEvent,
    CandidateState,
    CandidateView,
    Failure,
    apply_candidate_event,
    is_skipped,
)
from orchestrator.domain.errors import ErrorCode, OrchestratorError
from tests.domain.samples import T0, make_candidate

C, V = CandidateState, CandidateEvent
LATER = T0 + timedelta(seconds=11)
BOOM = Failure(reason="device_timeout", message="no answer", code=ErrorCode.DEVICE_TIMEOUT)

# Every legal move, written out independently of CANDIDATE_TRANSITIONS; every other pair is
# refused with DEVICE_INVALID_STATE.
EXPECTED_LEGAL: dict[tuple[CandidateState, CandidateEvent], CandidateState] = {
    (C.DISCOVERED, V.PROVISION): C.PROVISIONING,
    (C.DISCOVERED, V.SKIP): C.FAILED,
    (C.PROVISIONING, V.DELIVERED): C.PROVISIONED,
    (C.PROVISIONING, V.FAIL): C.FAILED,
    (C.PROVISIONING, V.SKIP): C.FAILED,
    (C.PROVISIONED, V.VERIFY): C.VERIFYING,
    (C.PROVISIONED, V.FAIL): C.FAILED,
    (C.PROVISIONED, V.SKIP): C.FAILED,
    (C.VERIFYING, V.VERIFIED): C.VERIFIED,
    (C.VERIFYING, V.FAIL): C.FAILED,
    (C.VERIFYING, V.SKIP): C.FAILED,
    (C.FAILED, V.RETRY): C.PROVISIONING,
    (C.FAILED, V.SKIP): C.FAILED,
}
ILLEGAL = [
    pair for pair in itertools.product(CandidateState, CandidateEvent) if pair not in EXPECTED_LEGAL
]


def _id(value: object) -> str:
    return str(value)


def _apply(candidate: Candidate, event: CandidateEvent, *, max_retries: int = 3) -> Candidate:
    failure = BOOM if event is V.FAIL else None
    return apply_candidate_event(candidate, event, LATER, max_retries=max_retries, failure=failure)


def test_the_table_holds_exactly_the_legal_moves() -> None:
    assert EXPECTED_LEGAL == CANDIDATE_TRANSITIONS
    assert len(ILLEGAL) == len(CandidateState) * len(CandidateEvent) - len(EXPECTED_LEGAL)


@pytest.mark.parametrize(("pair", "target"), list(EXPECTED_LEGAL.items()), ids=_id)
def test_legal_move_reaches_the_expected_state(
    pair: tuple[CandidateState, CandidateEvent], target: CandidateState
) -> None:
    state, event = pair
    before = make_candidate(state)
    after = _apply(before, event)
    assert after.state is target
    assert after.updated_at == LATER
    assert (after.mac, after.ip, after.discovered_at) == (
        before.mac,
        before.ip,
        before.discovered_at,
    )


@pytest.mark.parametrize("pair", ILLEGAL, ids=_id)
def test_illegal_move_raises_device_invalid_state(
    pair: tuple[CandidateState, CandidateEvent],
) -> None:
    state, event = pair
    with pytest.raises(OrchestratorError) as caught:
        _apply(make_candidate(state), event)
    assert caught.value.code is ErrorCode.DEVICE_INVALID_STATE


def test_the_verified_state_is_final() -> None:
    assert not [pair for pair in CANDIDATE_TRANSITIONS if pair[0] is C.VERIFIED]


class TestRetry:
    def test_retry_spends_one_unit_of_budget_and_clears_the_failure(self) -> None:
        failed = make_candidate(C.FAILED, retry_count=1, failure=BOOM)
        retried = _apply(failed, V.RETRY, max_retries=3)
        assert retried.state is C.PROVISIONING
        assert retried.retry_count == 2
        assert retried.failure is None

    def test_the_last_retry_is_allowed(self) -> None:
        retried = _apply(make_candidate(C.FAILED, retry_count=2), V.RETRY, max_retries=3)
        assert retried.retry_count == 3

    @pytest.mark.parametrize(("retry_count", "max_retries"), [(3, 3), (4, 3), (0, 0)])
    def test_an_exhausted_budget_refuses_the_retry(
        self, retry_count: int, max_retries: int
    ) -> None:
        failed = make_candidate(C.FAILED, retry_count=retry_count)
        with pytest.raises(OrchestratorError) as caught:
            _apply(failed, V.RETRY, max_retries=max_retries)
        assert caught.value.code is ErrorCode.MAX_RETRIES_EXCEEDED

    def test_the_state_is_checked_before_the_budget(self) -> None:
        with pytest.raises(OrchestratorError) as caught:
            _apply(make_candidate(C.VERIFIED, retry_count=9), V.RETRY, max_retries=3)
        assert caught.value.code is ErrorCode.DEVICE_INVALID_STATE

    def test_other_events_leave_the_budget_alone(self) -> None:
        candidate = make_candidate(C.DISCOVERED, retry_count=2)
        for event in (V.PROVISION, V.DELIVERED, V.VERIFY, V.VERIFIED):
            candidate = _apply(candidate, event)
        assert candidate.retry_count == 2


class TestFailAndSkip:
    @pytest.mark.parametrize("state", [C.PROVISIONING, C.PROVISIONED, C.VERIFYING])
    def test_fail_records_the_failure(self, state: CandidateState) -> None:
        failed = _apply(make_candidate(state), V.FAIL)
        assert failed.failure == BOOM
        assert not is_skipped(failed)

    def test_fail_without_a_failure_is_a_programming_error(self) -> None:
        with pytest.raises(ValueError, match="failure"):
            apply_candidate_event(make_candidate(C.PROVISIONING), V.FAIL, LATER, max_retries=3)

    @pytest.mark.parametrize(
        "state", [C.DISCOVERED, C.PROVISIONING, C.PROVISIONED, C.VERIFYING, C.FAILED]
    )
    def test_skip_ends_failed_with_the_skipped_reason(self, state: CandidateState) -> None:
        skipped = _apply(make_candidate(state), V.SKIP)
        assert skipped.state is C.FAILED
        assert skipped.failure is not None
        assert skipped.failure.reason == SKIPPED_REASON == "skipped"
        assert skipped.failure.code is None
        assert "skipped" in skipped.failure.message
        assert is_skipped(skipped)

    def test_a_skipped_device_can_be_retried(self) -> None:
        retried = _apply(_apply(make_candidate(C.DISCOVERED), V.SKIP), V.RETRY)
        assert retried.state is C.PROVISIONING
        assert not is_skipped(retried)


class TestTimestamps:
    def test_delivered_sets_provisioned_at_and_verified_sets_verified_at(self) -> None:
        candidate = make_candidate(C.DISCOVERED)
        provisioning = apply_candidate_event(candidate, V.PROVISION, T0, max_retries=3)
        assert (provisioning.provisioned_at, provisioning.verified_at) == (None, None)
        delivered_at = T0 + timedelta(seconds=5)
        provisioned = apply_candidate_event(provisioning, V.DELIVERED, delivered_at, max_retries=3)
        assert provisioned.provisioned_at == delivered_at
        assert provisioned.verified_at is None
        verifying = apply_candidate_event(
            provisioned, V.VERIFY, delivered_at + timedelta(seconds=1), max_retries=3
        )
        assert verifying.verified_at is None
        verified_at = T0 + timedelta(seconds=30)
        verified = apply_candidate_event(verifying, V.VERIFIED, verified_at, max_retries=3)
        assert verified.verified_at == verified_at
        assert verified.provisioned_at == delivered_at
        assert verified.updated_at == verified_at


class TestView:
    def test_the_view_carries_the_failure_message_and_allowlist_facts(self) -> None:
        failed = make_candidate(C.FAILED, failure=BOOM, retry_count=1)
        view = CandidateView.of(failed, in_allowlist=True, container_id="ctr-7")
        assert view.error_message == "no answer"
        assert view.in_allowlist
        assert view.container_id == "ctr-7"
        assert view.retry_count == 1

    def test_optional_fields_are_omitted_never_null(self) -> None:
        view = CandidateView.of(make_candidate(C.DISCOVERED), in_allowlist=False, container_id=None)
        raw = msgspec.json.encode(view)
        assert b"null" not in raw
        decoded = msgspec.json.decode(raw)
        assert isinstance(decoded, dict)
        assert set(decoded) == {
            "mac",
            "ip",
            "state",
            "rssi",
            "firmware_version",
            "discovered_at",
            "retry_count",
            "in_allowlist",
        }
        assert decoded["retry_count"] == 0
        assert decoded["in_allowlist"] is False


def test_progress_rises_along_the_happy_path_and_failed_has_none() -> None:
    path = [C.DISCOVERED, C.PROVISIONING, C.PROVISIONED, C.VERIFYING, C.VERIFIED]
    values = [PROGRESS[state] for state in path]
    assert values == sorted(values)
    assert (values[0], values[-1]) == (0, 100)
    assert len(set(values)) == len(values)
    assert C.FAILED not in PROGRESS
