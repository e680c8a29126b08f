"""Batch-level rules, by example (test_batch_stateful drives them in random sequences)."""

from __future__ import annotations

import pytest

from orchestrator.domain.batch import (
    is_in_flight,
    plan_provision_all,
    provision_decision,
    require_accepting_work,
    retry_decision,
)
from orchestrator.domain.candidate import CandidateEvent, CandidateState
from orchestrator.domain.errors import ErrorCode, OrchestratorError
from orchestrator.domain.mac import Mac
from orchestrator.domain.session import SessionState
from tests.domain.samples import make_candidate, make_session

C = CandidateState
IN_FLIGHT = [C.PROVISIONING, C.PROVISIONED, C.VERIFYING]


def _mac(n: int) -> Mac:
    return Mac(f"AA:BB:CC:DD:EE:{n:02X}")


class TestProvisionAll:
    CANDIDATES = (
        make_candidate(C.DISCOVERED, mac=_mac(1)),
        make_candidate(C.DISCOVERED, mac=_mac(2)),
        make_candidate(C.PROVISIONING, mac=_mac(3)),
        make_candidate(C.FAILED, mac=_mac(4)),
        make_candidate(C.VERIFIED, mac=_mac(5)),
        make_candidate(C.DISCOVERED, mac=_mac(6)),
    )
    ALLOWLISTED = frozenset({_mac(1), _mac(3), _mac(4), _mac(5)})

    def test_only_allowlisted_starts_admitted_discovered_devices(self) -> None:
        plan = plan_provision_all(self.CANDIDATES, self.ALLOWLISTED, only_allowlisted=True)
        assert plan.start == (_mac(1),)
        assert plan.skipped == (_mac(2), _mac(6))

    def test_without_the_allowlist_every_discovered_device_starts(self) -> None:
        plan = plan_provision_all(self.CANDIDATES, self.ALLOWLISTED, only_allowlisted=False)
        assert plan.start == (_mac(1), _mac(2), _mac(6))
        assert plan.skipped == ()

    def test_nothing_to_do_is_an_empty_plan(self) -> None:
        plan = plan_provision_all([], frozenset(), only_allowlisted=True)
        assert (plan.start, plan.skipped) == ((), ())


@pytest.mark.parametrize(
    ("state", "code"),
    [
        (SessionState.DISCOVERING, None),
        (SessionState.ACTIVE, None),
        (SessionState.PAUSED, ErrorCode.INVALID_REQUEST),
        (SessionState.CLOSING, ErrorCode.SESSION_ALREADY_CLOSED),
        (SessionState.CLOSED, ErrorCode.SESSION_ALREADY_CLOSED),
    ],
)
def test_require_accepting_work(state: SessionState, code: ErrorCode | None) -> None:
    session = make_session(state)
    if code is None:
        require_accepting_work(session)
        return
    with pytest.raises(OrchestratorError) as caught:
        require_accepting_work(session)
    assert caught.value.code is code


class TestProvisionDecision:
    def test_a_discovered_allowlisted_device_is_provisioned(self) -> None:
        decision = provision_decision(make_candidate(C.DISCOVERED), in_allowlist=True)
        assert decision is CandidateEvent.PROVISION

    @pytest.mark.parametrize("state", IN_FLIGHT)
    def test_a_repeated_request_is_harmless(self, state: CandidateState) -> None:
        assert provision_decision(make_candidate(state), in_allowlist=True) is None

    @pytest.mark.parametrize("state", list(CandidateState))
    def test_a_device_off_the_allowlist_is_refused(self, state: CandidateState) -> None:
        with pytest.raises(OrchestratorError) as caught:
            provision_decision(make_candidate(state), in_allowlist=False)
        assert caught.value.code is ErrorCode.DEVICE_NOT_IN_ALLOWLIST

    @pytest.mark.parametrize(("state", "hint"), [(C.FAILED, "retry"), (C.VERIFIED, "nothing")])
    def test_a_finished_device_is_in_the_wrong_state(
        self, state: CandidateState, hint: str
    ) -> None:
        with pytest.raises(OrchestratorError) as caught:
            provision_decision(make_candidate(state), in_allowlist=True)
        assert caught.value.code is ErrorCode.DEVICE_INVALID_STATE
        assert hint in caught.value.message


class TestRetryDecision:
    @pytest.mark.parametrize("state", IN_FLIGHT)
    def test_a_retry_already_under_way_is_harmless(self, state: CandidateState) -> None:
        assert retry_decision(make_candidate(state), in_allowlist=False) is None

    @pytest.mark.parametrize("state", [C.DISCOVERED, C.FAILED, C.VERIFIED])
    def test_otherwise_the_machine_decides(self, state: CandidateState) -> None:
        assert retry_decision(make_candidate(state), in_allowlist=True) is CandidateEvent.RETRY

    @pytest.mark.parametrize("state", [C.DISCOVERED, C.FAILED, C.VERIFIED])
    def test_a_retry_needs_the_allowlist(self, state: CandidateState) -> None:
        with pytest.raises(OrchestratorError) as caught:
            retry_decision(make_candidate(state), in_allowlist=False)
        assert caught.value.code is ErrorCode.DEVICE_NOT_IN_ALLOWLIST


@pytest.mark.parametrize("state", list(CandidateState))
def test_is_in_flight(state: CandidateState) -> None:
    assert is_in_flight(make_candidate(state)) is (state in IN_FLIGHT)
