"""The sessions this run drives, and the one write path every change to them takes:
domain rule -> store -> audit -> event, under one lock, so the store, the audit trail and the
event log agree on the order of things."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

import msgspec

from orchestrator.batch import readmodels as views
from orchestrator.batch.audit import Auditor
from orchestrator.domain.audit import Outcome
from orchestrator.domain.candidate import (
    Candidate,
    CandidateEvent,
    CandidateState,
    CloudRegistration,
    Failure,
    apply_candidate_event,
)
from orchestrator.domain.errors import ErrorCode, OrchestratorError
from orchestrator.domain.events import EventType, Payload, SessionStatus
from orchestrator.domain.mac import Mac
from orchestrator.domain.network import NetworkStatus
from orchestrator.domain.session import Session, SessionCounts, SessionSnapshot
from orchestrator.ports.devices import OnboardingNetwork
from orchestrator.ports.events import EventPublisher
from orchestrator.ports.storage import Store


class CandidateIndex(dict[Mac, Candidate]):
    """A driven session's candidates by MAC, with a running tally of their states, so the
    session's counts cost O(1) per change however big the batch."""

    def __init__(self, candidates: Mapping[Mac, Candidate] | None = None) -> None:
        super().__init__()
        self.states: Counter[CandidateState] = Counter()
        for mac, candidate in (candidates or {}).items():
            self[mac] = candidate

    def __setitem__(self, mac: Mac, candidate: Candidate) -> None:
        old = self.get(mac)
        if old is not None:
            self.states[old.state] -= 1
        self.states[candidate.state] += 1
        super().__setitem__(mac, candidate)

    def __delitem__(self, mac: Mac) -> None:
        self.states[self[mac].state] -= 1
        super().__delitem__(mac)


class Driven(msgspec.Struct, kw_only=True):
    """A session this run drives, with its candidates cached (the store stays authoritative)."""

    session: Session
    candidates: dict[Mac, Candidate]
    task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.candidates, CandidateIndex):
            self.candidates = CandidateIndex(self.candidates)

    def snapshot(self) -> SessionSnapshot:
        """The complete session, its counts from the running tally."""
        candidates = self.candidates
        if isinstance(candidates, CandidateIndex):
            return SessionSnapshot.counted(self.session, SessionCounts.of_states(candidates.states))
        return SessionSnapshot.of(self.session, candidates.values())


class Registry:
    """Driven sessions and the write path; the lock is held by the callers' use cases."""

    def __init__(
        self,
        *,
        store: Store,
        events: EventPublisher,
        network: OnboardingNetwork,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.clock = clock
        self.audit = Auditor(store.audit, clock)
        self.lock = asyncio.Lock()
        self.driven: dict[str, Driven] = {}
        self._events = events
        self._network = network
        self._network_published: NetworkStatus | None = None

    @staticmethod
    def candidate(driven: Driven, mac: Mac) -> Candidate:
        """The candidate `mac` of a driven session, or DEVICE_NOT_FOUND."""
        candidate = driven.candidates.get(mac)
        if candidate is None:
            raise OrchestratorError(
                ErrorCode.DEVICE_NOT_FOUND, f"device {mac} is not in session {driven.session.id}"
            )
        return candidate

    async def save_session(self, driven: Driven, session: Session, action: str) -> None:
        """Store a changed session, audit it as `action` and publish it."""
        driven.session = session
        async with self.store.atomic():
            await self.store.sessions.save(session)
            await self.audit.record(action, session_id=session.id, detail=str(session.state))
            await self.publish_session(driven)

    async def move(
        self,
        driven: Driven,
        candidate: Candidate,
        event: CandidateEvent,
        action: str,
        failure: Failure | None = None,
        *,
        cloud: CloudRegistration | None = None,
    ) -> Candidate:
        """Apply `event` to one candidate: store, audit, publish (one unit of work)."""
        updated = apply_candidate_event(
            candidate,
            event,
            self.clock(),
            max_retries=driven.session.max_retries,
            failure=failure,
            cloud=cloud,
        )
        async with self.store.atomic():
            await self.store.candidates.save(updated)
            driven.candidates[updated.mac] = updated
            await self._after_move(driven, [(candidate, updated)], action)
        return updated

    async def move_many(self, driven: Driven, macs: Iterable[Mac], event: CandidateEvent) -> None:
        """Apply `event` to several candidates in one store transaction."""
        now = self.clock()
        pairs = [
            (
                driven.candidates[mac],
                apply_candidate_event(
                    driven.candidates[mac], event, now, max_retries=driven.session.max_retries
                ),
            )
            for mac in macs
        ]
        if not pairs:
            return
        async with self.store.atomic():
            await self.store.candidates.save_many([new for _, new in pairs])
            for _, new in pairs:
                driven.candidates[new.mac] = new
            await self._after_move(driven, pairs, f"device.{event}")

    async def amend_failure(self, driven: Driven, candidate: Candidate, failure: Failure) -> None:
        """Replace the reason of a failed candidate with a better one (the device's own)."""
        updated = msgspec.structs.replace(candidate, failure=failure, updated_at=self.clock())
        async with self.store.atomic():
            await self.store.candidates.save(updated)
            driven.candidates[updated.mac] = updated
            await self._after_move(driven, [(candidate, updated)], "device.failure_reported")

    async def _after_move(
        self, driven: Driven, pairs: list[tuple[Candidate, Candidate]], action: str
    ) -> None:
        for old, new in pairs:
            error = (
                new.failure.message if new.failure and new.state is CandidateState.FAILED else None
            )
            await self.audit.record(
                action,
                Outcome.FAILED if error and new.failure and new.failure.code else Outcome.OK,
                session_id=driven.session.id,
                mac=new.mac,
                detail=f"{old.state}->{new.state}" + (f": {error}" if error else ""),
            )
            await self.publish(
                EventType.DEVICE_STATE_CHANGED,
                views.state_changed(old.state, new),
                driven.session.id,
            )
        await self.publish_session(driven)

    async def publish_session(self, driven: Driven) -> None:
        """Publish the complete session (its counts changed or its state did)."""
        snapshot = driven.snapshot()
        await self.publish(
            EventType.SESSION_STATUS, SessionStatus(session=snapshot), driven.session.id
        )

    async def publish(self, kind: EventType, payload: Payload, session_id: str | None) -> None:
        """Publish one event."""
        await self._events.publish(views.event(kind, payload, session_id, self.clock()))

    async def network_changed(self) -> None:
        """Publish the onboarding network's status, unless it is the one published last."""
        status = self._network.status()
        if status != self._network_published:
            self._network_published = status
            await self.publish(EventType.NETWORK_STATUS_CHANGED, status, None)

    async def current(self) -> Session | None:
        """The session a stream shows by default: the newest driven, else newest unclosed."""
        if self.driven:
            return max((d.session for d in self.driven.values()), key=lambda s: s.created_at)
        unclosed = await self.store.sessions.list_unclosed()
        return unclosed[-1] if unclosed else None

    async def candidates_of(self, session: Session) -> list[Candidate]:
        """A session's candidates: the cache of a driven session, else the store."""
        driven = self.driven.get(session.id)
        if driven is not None:
            return list(driven.candidates.values())
        return await self.store.candidates.list_for(session.id)

    async def snapshot(self, session: Session) -> SessionSnapshot:
        """The complete session with its derived counts."""
        return SessionSnapshot.of(session, await self.candidates_of(session))
