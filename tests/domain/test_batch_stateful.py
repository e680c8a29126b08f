"""Random operation sequences over one session and its candidates, through the domain's public
functions only, checked against an independent model of what the contract allows."""

from __future__ import annotations

from collections.abc import Callable, Set
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from orchestrator.domain.batch import (
    plan_provision_all,
    provision_decision,
    require_accepting_work,
    retry_decision,
)
from orchestrator.domain.candidate import (
    SKIPPED_REASON,
    Candidate,
    CandidateEvent,
    CandidateState,
    Failure,
    apply_candidate_event,
)
from orchestrator.domain.errors import ErrorCode, OrchestratorError
from orchestrator.domain.mac import Mac, parse_mac
from orchestrator.domain.session import (
    ClosedReason,
    Session,
    SessionCounts,
    SessionEvent,
    SessionState,
    apply_session_event,
    is_expired,
)
from tests.domain.samples import T0, make_session

C, S = CandidateState, SessionState
IN_FLIGHT = frozenset({C.PROVISIONING, C.PROVISIONED, C.VERIFYING})
DELIVERED = frozenset({C.PROVISIONED, C.VERIFYING, C.VERIFIED})
ACCEPTING_WORK = frozenset({S.DISCOVERING, S.ACTIVE})
OPEN = frozenset({S.DISCOVERING, S.ACTIVE, S.PAUSED})
LIFETIME = timedelta(minutes=30)

# Where each session event leads from each state; a state not listed refuses the event.
SESSION_MOVES: dict[SessionEvent, dict[SessionState, SessionState]] = {
    SessionEvent.DISCOVERY_FINISHED: {
        S.DISCOVERING: S.ACTIVE,
        S.ACTIVE: S.ACTIVE,
        S.PAUSED: S.PAUSED,
    },
    SessionEvent.PAUSE: {S.DISCOVERING: S.PAUSED, S.ACTIVE: S.PAUSED, S.PAUSED: S.PAUSED},
    SessionEvent.RESUME: {S.DISCOVERING: S.DISCOVERING, S.ACTIVE: S.ACTIVE, S.PAUSED: S.ACTIVE},
    SessionEvent.STOP: {
        S.DISCOVERING: S.CLOSING,
        S.ACTIVE: S.CLOSING,
        S.PAUSED: S.CLOSING,
        S.CLOSING: S.CLOSING,
        S.CLOSED: S.CLOSED,
    },
    SessionEvent.CLOSED: {S.CLOSING: S.CLOSED},
    SessionEvent.EXPIRE: {
        S.DISCOVERING: S.CLOSED,
        S.ACTIVE: S.CLOSED,
        S.PAUSED: S.CLOSED,
        S.CLOSING: S.CLOSED,
    },
}

FAILURE_REASONS = ["auth_error", "network_not_found", "device_timeout", "verification_timeout"]

# A small pool, so rediscoveries happen; spelled in lower case with dashes to go through parsing.
mac_spellings = st.integers(0, 11).map(lambda n: f"02-00-5e-00-53-{n:02x}")


@dataclass
class ModelDevice:
    """What the test expects of one candidate, kept independently of the domain's objects."""

    allowlisted: bool
    state: CandidateState = C.DISCOVERED
    retry_count: int = 0
    failure_reason: str | None = None
    provisioned_at: datetime | None = None
    verified_at: datetime | None = None


State = tuple[Session, dict[Mac, Candidate]]


class BatchMachine(RuleBasedStateMachine):
    """One session, its candidates, and the operator's and engine's requests in any order."""

    macs = Bundle("macs")

    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.session = make_session(S.DISCOVERING, expires_at=T0 + LIFETIME)
        self.candidates: dict[Mac, Candidate] = {}
        self.allowlisted: set[Mac] = set()
        self.model: dict[Mac, ModelDevice] = {}
        self.model_session = S.DISCOVERING
        self.model_reason: ClosedReason | None = None
        # The session state at every moment a candidate entered `provisioning`.
        self.work_started_in: list[SessionState] = []

    @initialize(max_retries=st.integers(0, 3))
    def set_budget(self, max_retries: int) -> None:
        self.session = make_session(
            S.DISCOVERING, expires_at=T0 + LIFETIME, max_retries=max_retries
        )

    # -- plumbing ------------------------------------------------------------------------------

    def _tick(self) -> None:
        self.now += timedelta(seconds=1)

    def _gate(self) -> ErrorCode | None:
        """The refusal, if any, that work-starting requests meet in the model's session."""
        if self.model_session in (S.CLOSING, S.CLOSED):
            return ErrorCode.SESSION_ALREADY_CLOSED
        if self.model_session is S.PAUSED:
            return ErrorCode.INVALID_REQUEST
        return None

    def _run(self, expected: ErrorCode | None, action: Callable[[], State]) -> bool:
        """Run `action`; commit its result, or check it was refused with `expected`."""
        before_session, before_candidates = self.session, dict(self.candidates)
        if expected is not None:
            with pytest.raises(OrchestratorError) as caught:
                action()
            assert caught.value.code is expected, caught.value
            assert self.session == before_session
            assert self.candidates == before_candidates
            return False
        session, candidates = action()
        for mac, candidate in candidates.items():
            old = before_candidates[mac]
            if candidate.state is C.PROVISIONING and old.state is not C.PROVISIONING:
                self.work_started_in.append(session.state)
        self.session, self.candidates = session, candidates
        return True

    def _macs_in(self, states: Set[CandidateState]) -> list[Mac]:
        return [mac for mac, device in self.model.items() if device.state in states]

    def _apply(self, mac: Mac, event: CandidateEvent, failure: Failure | None = None) -> Candidate:
        return apply_candidate_event(
            self.candidates[mac],
            event,
            self.now,
            max_retries=self.session.max_retries,
            failure=failure,
        )

    def _engine_step(self, mac: Mac, event: CandidateEvent, failure: Failure | None = None) -> bool:
        """An engine report (deliver, verify, fail): legal from the table alone."""
        self._tick()
        legal = {
            CandidateEvent.DELIVERED: {C.PROVISIONING},
            CandidateEvent.VERIFY: {C.PROVISIONED},
            CandidateEvent.VERIFIED: {C.VERIFYING},
            CandidateEvent.FAIL: IN_FLIGHT,
        }[event]
        expected = None if self.model[mac].state in legal else ErrorCode.DEVICE_INVALID_STATE
        return self._run(
            expected,
            lambda: (self.session, {**self.candidates, mac: self._apply(mac, event, failure)}),
        )

    def _session_step(self, event: SessionEvent) -> bool:
        self._tick()
        moves = SESSION_MOVES[event]
        expected: ErrorCode | None = None
        if self.model_session not in moves:
            closed = self.model_session in (S.CLOSING, S.CLOSED)
            expected = ErrorCode.SESSION_ALREADY_CLOSED if closed else ErrorCode.INVALID_REQUEST
        previous = self.model_session
        done = self._run(
            expected,
            lambda: (apply_session_event(self.session, event, self.now), self.candidates),
        )
        if done:
            self.model_session = moves[previous]
            if event is SessionEvent.EXPIRE:
                # A session the operator already stopped keeps "stopped" when it expires.
                self.model_reason = self.model_reason or ClosedReason.EXPIRED
            elif event is SessionEvent.STOP and previous in OPEN:
                self.model_reason = ClosedReason.STOPPED
        return done

    # -- discovery and the allowlist ----------------------------------------------------------

    @rule(target=macs, spelling=mac_spellings, allowlisted=st.booleans())
    def discover(self, spelling: str, allowlisted: bool) -> MultipleResults[Mac]:
        self._tick()
        mac = parse_mac(spelling)
        if mac in self.candidates or not self.session.is_open:
            return multiple()
        self.candidates[mac] = Candidate(
            session_id=self.session.id,
            mac=mac,
            ip=f"192.168.4.{len(self.candidates) + 10}",
            state=C.DISCOVERED,
            rssi=-60,
            firmware_version="1.4.2",
            discovered_at=self.now,
            updated_at=self.now,
        )
        self.model[mac] = ModelDevice(allowlisted=allowlisted)
        if allowlisted:
            self.allowlisted.add(mac)
        return multiple(mac)

    @rule(mac=macs)
    def add_to_allowlist(self, mac: Mac) -> None:
        self.allowlisted.add(mac)
        self.model[mac].allowlisted = True

    @rule(seconds=st.integers(1, 900))
    def let_time_pass(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    # -- operator requests that start work ------------------------------------------------------

    @rule(mac=macs)
    def provision_one(self, mac: Mac) -> None:
        self._tick()
        device = self.model[mac]
        expected = self._gate()
        if expected is None and not device.allowlisted:
            expected = ErrorCode.DEVICE_NOT_IN_ALLOWLIST
        if expected is None and device.state not in IN_FLIGHT | {C.DISCOVERED}:
            expected = ErrorCode.DEVICE_INVALID_STATE

        def action() -> State:
            require_accepting_work(self.session)
            candidate = self.candidates[mac]
            event = provision_decision(candidate, in_allowlist=mac in self.allowlisted)
            if event is None:
                return self.session, self.candidates
            return self.session, {**self.candidates, mac: self._apply(mac, event)}

        if self._run(expected, action) and device.state is C.DISCOVERED:
            device.state = C.PROVISIONING

    @rule(only_allowlisted=st.booleans())
    def provision_all(self, only_allowlisted: bool) -> None:
        self._tick()
        discovered = [mac for mac, device in self.model.items() if device.state is C.DISCOVERED]
        admitted = [m for m in discovered if self.model[m].allowlisted or not only_allowlisted]
        left_alone = [m for m in discovered if m not in admitted]
        before = dict(self.candidates)

        def action() -> State:
            require_accepting_work(self.session)
            plan = plan_provision_all(
                self.candidates.values(), self.allowlisted, only_allowlisted=only_allowlisted
            )
            assert plan.start == tuple(admitted)
            assert plan.skipped == tuple(left_alone)
            moved = {mac: self._apply(mac, CandidateEvent.PROVISION) for mac in plan.start}
            return self.session, {**self.candidates, **moved}

        if self._run(self._gate(), action):
            for mac in admitted:
                self.model[mac].state = C.PROVISIONING
            if only_allowlisted:
                for mac, candidate in self.candidates.items():
                    if mac not in self.allowlisted:
                        assert candidate == before[mac]
            # Repeating the request starts nothing twice.
            again = plan_provision_all(
                self.candidates.values(), self.allowlisted, only_allowlisted=only_allowlisted
            )
            assert again.start == ()

    @rule(mac=macs)
    def retry(self, mac: Mac) -> None:
        self._tick()
        device = self.model[mac]
        expected = self._gate()
        if expected is None and device.state not in IN_FLIGHT and not device.allowlisted:
            expected = ErrorCode.DEVICE_NOT_IN_ALLOWLIST
        elif expected is None and device.state is C.FAILED:
            if device.retry_count >= self.session.max_retries:
                expected = ErrorCode.MAX_RETRIES_EXCEEDED
        elif expected is None and device.state not in IN_FLIGHT:
            expected = ErrorCode.DEVICE_INVALID_STATE

        def action() -> State:
            require_accepting_work(self.session)
            event = retry_decision(self.candidates[mac], in_allowlist=mac in self.allowlisted)
            if event is None:
                return self.session, self.candidates
            return self.session, {**self.candidates, mac: self._apply(mac, event)}

        if self._run(expected, action) and device.state is C.FAILED:
            device.state = C.PROVISIONING
            device.retry_count += 1
            device.failure_reason = None

    # -- operator requests that end work --------------------------------------------------------

    @rule(mac=macs)
    def skip(self, mac: Mac) -> None:
        self._tick()
        device = self.model[mac]
        expected = ErrorCode.DEVICE_INVALID_STATE if device.state is C.VERIFIED else None
        done = self._run(
            expected,
            lambda: (self.session, {**self.candidates, mac: self._apply(mac, CandidateEvent.SKIP)}),
        )
        if done:
            device.state = C.FAILED
            device.failure_reason = SKIPPED_REASON

    # -- engine reports -------------------------------------------------------------------------

    @rule(mac=macs)
    def deliver(self, mac: Mac) -> None:
        if self._engine_step(mac, CandidateEvent.DELIVERED):
            self.model[mac].state = C.PROVISIONED
            self.model[mac].provisioned_at = self.now

    @rule(mac=macs)
    def start_verifying(self, mac: Mac) -> None:
        if self._engine_step(mac, CandidateEvent.VERIFY):
            self.model[mac].state = C.VERIFYING

    @rule(mac=macs)
    def verify(self, mac: Mac) -> None:
        if self._engine_step(mac, CandidateEvent.VERIFIED):
            self.model[mac].state = C.VERIFIED
            self.model[mac].verified_at = self.now

    @rule(mac=macs, reason=st.sampled_from(FAILURE_REASONS))
    def fail(self, mac: Mac, reason: str) -> None:
        failure = Failure(reason=reason, message=f"the device failed: {reason}")
        if self._engine_step(mac, CandidateEvent.FAIL, failure):
            self.model[mac].state = C.FAILED
            self.model[mac].failure_reason = reason

    # The rules above pick any device, so they mostly exercise refusals. The two below pick a
    # device the request applies to, so runs reach the deep states (verified, an exhausted
    # retry budget) within a few dozen steps.

    @precondition(lambda self: any(d.state in IN_FLIGHT for d in self.model.values()))
    @rule(data=st.data())
    def engine_progresses(self, data: st.DataObject) -> None:
        """The engine's next few reports for one device it works on: progress or a failure."""
        mac = data.draw(st.sampled_from(sorted(self._macs_in(IN_FLIGHT))))
        for _ in range(data.draw(st.integers(1, 3))):
            state = self.model[mac].state
            if state not in IN_FLIGHT:
                return
            if data.draw(st.integers(0, 4)) == 0:
                self.fail(mac, data.draw(st.sampled_from(FAILURE_REASONS)))
            elif state is C.PROVISIONING:
                self.deliver(mac)
            elif state is C.PROVISIONED:
                self.start_verifying(mac)
            else:
                self.verify(mac)

    @precondition(lambda self: any(d.state is C.FAILED for d in self.model.values()))
    @rule(data=st.data())
    def retry_a_failed_device(self, data: st.DataObject) -> None:
        self.retry(data.draw(st.sampled_from(sorted(self._macs_in({C.FAILED})))))

    # -- the session ----------------------------------------------------------------------------

    # One rule for every session request, so that most runs spend their steps on an open
    # session rather than ending it early.
    @rule(event=st.sampled_from(SessionEvent))
    def session_request(self, event: SessionEvent) -> None:
        self._session_step(event)

    # -- invariants -----------------------------------------------------------------------------

    @invariant()
    def domain_matches_the_model(self) -> None:
        assert self.session.state is self.model_session
        assert self.session.closed_reason is self.model_reason
        assert set(self.candidates) == set(self.model)
        for mac, candidate in self.candidates.items():
            device = self.model[mac]
            assert candidate.mac == mac
            assert candidate.state is device.state, mac
            assert candidate.retry_count == device.retry_count, mac
            reason = candidate.failure.reason if candidate.failure else None
            assert reason == device.failure_reason, mac
            assert candidate.provisioned_at == device.provisioned_at, mac
            assert candidate.verified_at == device.verified_at, mac

    @invariant()
    def counts_are_derived_from_the_candidates(self) -> None:
        states = [device.state for device in self.model.values()]
        assert SessionCounts.of(self.candidates.values()) == SessionCounts(
            device_count=len(states),
            provisioned_count=sum(1 for s in states if s in DELIVERED),
            verified_count=sum(1 for s in states if s is C.VERIFIED),
            failed_count=sum(1 for s in states if s is C.FAILED),
        )

    @invariant()
    def the_retry_budget_holds(self) -> None:
        for candidate in self.candidates.values():
            assert 0 <= candidate.retry_count <= self.session.max_retries

    @invariant()
    def timestamps_and_failures_match_the_state(self) -> None:
        for candidate in self.candidates.values():
            if candidate.state is C.VERIFIED:
                assert candidate.verified_at is not None
                assert candidate.provisioned_at is not None
                assert candidate.provisioned_at < candidate.verified_at
            if candidate.state in DELIVERED:
                assert candidate.provisioned_at is not None
            assert (candidate.failure is not None) is (candidate.state is C.FAILED)

    @invariant()
    def no_work_starts_unless_the_session_accepts_it(self) -> None:
        assert set(self.work_started_in) <= ACCEPTING_WORK

    @invariant()
    def expiry_follows_the_deadline(self) -> None:
        deadline = T0 + LIFETIME
        expected = self.model_reason is ClosedReason.EXPIRED or (
            self.model_session in OPEN and self.now >= deadline
        )
        assert is_expired(self.session, self.now) is expected


BatchMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=40, deadline=None, database=None
)
TestBatch = BatchMachine.TestCase
