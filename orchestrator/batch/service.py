"""Batch sessions: the use cases behind the V1 batch and session routes.

The service owns the sessions this run drives (their shared state and write path are in
`registry.py`; device requests and progress in `devices.py`). Sessions left open by an
earlier run are *recoverable*: they are read from the store but nothing drives them until an
operator resumes (adopts) or discards them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from types import TracebackType
from typing import TypeVar

import msgspec

from orchestrator.batch import readmodels as views
from orchestrator.batch.devices import DeviceWork, PairingOffers
from orchestrator.batch.driver import drive_session
from orchestrator.batch.readmodels import DeviceOutcome, ProvisionAllOutcome, SessionView
from orchestrator.batch.registry import Driven, Registry
from orchestrator.domain import batch as rules
from orchestrator.domain.allowlist import AllowlistEntry
from orchestrator.domain.audit import Outcome
from orchestrator.domain.candidate import (
    CandidateEvent,
    CandidateState,
    CandidateView,
    CloudRegistration,
    Failure,
)
from orchestrator.domain.errors import ErrorCode, OrchestratorError
from orchestrator.domain.events import (
    Event,
    EventType,
    SessionStatus,
)
from orchestrator.domain.mac import Mac
from orchestrator.domain.network import NetworkStatus
from orchestrator.domain.session import (
    ClosedReason,
    CloudTarget,
    Session,
    SessionConfig,
    SessionEvent,
    SessionSnapshot,
    SessionState,
    apply_session_event,
    is_expired,
    is_recoverable,
)
from orchestrator.ports.devices import (
    DeviceSighting,
    DeviceSource,
    Engine,
    OnboardingNetwork,
    WorkOrder,
)
from orchestrator.ports.events import EventPublisher
from orchestrator.ports.secrets import Sealer
from orchestrator.ports.storage import Store
from orchestrator.protocol.messages import CloudProvisioning

log = logging.getLogger(__name__)

T = TypeVar("T")


def _cloud_context(session_id: str) -> str:
    """The sealing context of a session's cloud secrets (distinct from its password's)."""
    return f"{session_id}:cloud"


def _target_of(cloud: CloudProvisioning | None) -> CloudTarget | None:
    """Where a cloud section points, without its secrets."""
    if cloud is None:
        return None
    return CloudTarget(
        provider=cloud.provider,
        host=cloud.host,
        port=cloud.port,
        device_name_prefix=cloud.device_name_prefix,
    )


_WORKING = frozenset({SessionState.DISCOVERING, SessionState.ACTIVE})
"""Session states in which the engine may start work on a device."""


class BatchRules(msgspec.Struct, frozen=True, kw_only=True):
    """Settings the service applies to every new session."""

    max_retries: int = 3
    session_ttl_s: int | None = None


class BatchService:
    """Start, drive, inspect and end batch sessions."""

    def __init__(
        self,
        *,
        store: Store,
        sealer: Sealer,
        engine: Engine,
        network: OnboardingNetwork,
        devices: DeviceSource,
        events: EventPublisher,
        clock: Callable[[], datetime],
        new_session_id: Callable[[], str],
        run_id: str,
        rules: BatchRules,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        pairing: PairingOffers | None = None,
    ) -> None:
        """`clock` and `sleep` are injected together so tests can fast-forward time."""
        self._store = store
        self._sealer = sealer
        self._engine = engine
        self._network = network
        self._devices = devices
        self._events = events
        self._clock = clock
        self._new_session_id = new_session_id
        self._run_id = run_id
        self._rules = rules
        self._sleep = sleep
        self._registry = Registry(store=store, events=events, network=network, clock=clock)
        self._work = DeviceWork(
            self._registry,
            engine,
            acquire=self._driven_for,
            acquire_for_work=self._driven_for_work,
            pairing=pairing,
        )
        self._tasks: asyncio.TaskGroup | None = None

    async def __aenter__(self) -> BatchService:
        self._tasks = asyncio.TaskGroup()
        await self._tasks.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Sessions stay open in the store: the next run lists them as recoverable.
        for driven in self._registry.driven.values():
            if driven.task is not None:
                driven.task.cancel()
        self._registry.driven.clear()
        if self._tasks is not None:
            await self._tasks.__aexit__(exc_type, exc, tb)
            self._tasks = None

    # -- starting and ending ------------------------------------------------------------

    async def start(
        self,
        target_ssid: str,
        target_password: str,
        config: SessionConfig | None,
        *,
        cloud: CloudProvisioning | None = None,
    ) -> tuple[SessionSnapshot, bool]:
        """Open a new session; (snapshot, True) when created, (snapshot, False) when the same
        request was already served (a repeated POST), else SESSION_ALREADY_ACTIVE. `cloud`
        (with its key and secret) is sealed like the password; only where it points is
        shown."""
        config = config or SessionConfig()
        async with self._registry.lock:
            for other in await self._store.sessions.list_unclosed():
                same = await self._is_same_request(
                    other, target_ssid, target_password, config, cloud
                )
                if same:
                    return await self._registry.snapshot(other), False
                hint = (
                    "resume or discard it first"
                    if is_recoverable(other, self._run_id)
                    else "stop it first"
                )
                raise OrchestratorError(
                    ErrorCode.SESSION_ALREADY_ACTIVE,
                    f"session {other.id} is still {other.state}; {hint}",
                )
            # The access point first: a start it fails leaves no session behind, so the
            # operator's retry tries the access point again (NETWORK_ERROR is retryable).
            await self._network_up("session.start", detail=target_ssid)
            try:
                now = self._clock()
                ttl = self._rules.session_ttl_s
                session = Session(
                    id=self._new_session_id(),
                    state=SessionState.DISCOVERING,
                    target_ssid=target_ssid,
                    config=config,
                    created_at=now,
                    updated_at=now,
                    run_id=self._run_id,
                    max_retries=self._rules.max_retries,
                    expires_at=now + timedelta(seconds=ttl) if ttl else None,
                    cloud=_target_of(cloud),
                )
                sealed = self._sealer.seal(target_password, context=session.id)
                sealed_cloud = None
                if cloud is not None:
                    text = msgspec.json.encode(cloud).decode()
                    sealed_cloud = self._sealer.seal(text, context=_cloud_context(session.id))
                await self._store.sessions.create(session, sealed, sealed_cloud)
                await self._registry.audit.record(
                    "session.start", session_id=session.id, detail=target_ssid
                )
                log.info("session %s started for target SSID %r", session.id, target_ssid)
                snapshot = SessionSnapshot.of(session, [])
                await self._registry.publish(
                    EventType.SESSION_STATUS, SessionStatus(session=snapshot), session.id
                )
                await self._drive(Driven(session=session, candidates={}))
            except Exception:
                await self._network_down_if_idle()
                raise
            return snapshot, True

    async def stop(self, session_id: str) -> SessionSnapshot:
        """Close a session (idempotent): stop its work, take the network down."""
        async with self._registry.lock:
            session = await self._load(session_id)
            if session.state is SessionState.CLOSED:
                return await self._registry.snapshot(session)
            await self._close(session, ClosedReason.STOPPED, "session.stop")
            return await self._registry.snapshot(await self._load(session_id))

    async def discard(self, session_id: str) -> None:
        """Close a recoverable session without resuming it."""
        async with self._registry.lock:
            session = await self._require(session_id)
            if not is_recoverable(session, self._run_id):
                raise OrchestratorError(
                    ErrorCode.SESSION_NOT_RECOVERABLE,
                    f"session {session_id} is not recoverable (it is {session.state}"
                    f"{' and driven by this run' if session.is_open else ''})",
                )
            await self._close(session, ClosedReason.DISCARDED, "session.discard")

    async def resume_recoverable(self, session_id: str) -> SessionView:
        """Adopt a session left open by an earlier run and carry on driving it."""
        async with self._registry.lock:
            session = await self._require(session_id)
            if session_id in self._registry.driven:
                return await self._view(session, include_devices=True)
            if not is_recoverable(session, self._run_id):
                raise OrchestratorError(
                    ErrorCode.SESSION_NOT_RECOVERABLE,
                    f"session {session_id} is {session.state}; only sessions left open by an "
                    "earlier run can be resumed",
                )
            if session.state is SessionState.CLOSING:
                await self._close(session, ClosedReason.STOPPED, "session.resume")
                return await self._view(await self._require(session_id), include_devices=True)
            # Before adopting it: a failure leaves it recoverable, so resuming can be retried.
            await self._network_up("session.resume", session_id=session_id)
            try:
                adopted = msgspec.structs.replace(
                    session, run_id=self._run_id, updated_at=self._clock()
                )
                await self._store.sessions.save(adopted)
                candidates = await self._store.candidates.list_for(session_id)
                driven = Driven(session=adopted, candidates={c.mac: c for c in candidates})
                await self._registry.audit.record("session.resume", session_id=session_id)
                await self._drive(driven)
            except Exception:
                await self._network_down_if_idle()
                raise
            in_flight = [c.mac for c in candidates if rules.is_in_flight(c)]
            if in_flight and adopted.state is not SessionState.PAUSED:
                await self._engine.submit(session_id, in_flight)
            await self._registry.publish_session(driven)
            return await self._view(adopted, include_devices=True)

    async def pause(self, session_id: str) -> SessionView:
        """Stop starting new work; running work finishes."""
        return await self._session_event(session_id, SessionEvent.PAUSE, "session.pause")

    async def resume(self, session_id: str) -> SessionView:
        """Carry on after a pause."""
        view = await self._session_event(session_id, SessionEvent.RESUME, "session.resume")
        async with self._registry.lock:
            driven = self._registry.driven.get(session_id)
            if driven is not None:
                # Everything in flight: work that was queued when the pause came, and work of
                # a session adopted while paused (the engine ignores what is already running).
                waiting = [c.mac for c in driven.candidates.values() if rules.is_in_flight(c)]
                if waiting:
                    await self._engine.submit(session_id, waiting)
        return view

    # -- reading ------------------------------------------------------------------------

    async def view(self, session_id: str, *, include_devices: bool) -> SessionView:
        """A session as GET /batch/{id} shows it.

        A session this run drives is read without the service lock: dashboards poll it
        while the engine moves devices, and behind the lock each read would wait for every
        queued move (p99 676 ms with 1000 devices in a batch). Its view is built in one
        synchronous step from the in-memory session, so it is still one consistent moment.
        """
        driven = self._registry.driven.get(session_id)
        if driven is not None and not is_expired(driven.session, self._clock()):
            entries = await self._allowlist_entries() if include_devices else None
            return views.session_view(
                driven.session,
                driven.candidates.values(),
                entries,
                self._network.status(),
                self._clock(),
            )
        async with self._registry.lock:
            session = await self._load(session_id)
            return await self._view(session, include_devices=include_devices)

    async def devices(self, session_id: str, state: CandidateState | None) -> list[CandidateView]:
        """A session's candidates, optionally only those in `state`."""
        view = await self.view(session_id, include_devices=True)
        return [d for d in view.devices if state is None or d.state is state]

    async def recoverable(self) -> list[SessionSnapshot]:
        """Sessions left open by an earlier run."""
        sessions = await self._store.sessions.list_unclosed()
        return [
            await self._registry.snapshot(s)
            for s in sessions
            if is_recoverable(s, self._run_id) and s.id not in self._registry.driven
        ]

    async def history(self, limit: int) -> list[SessionSnapshot]:
        """The most recent sessions, newest first."""
        return [await self._registry.snapshot(s) for s in await self._store.sessions.history(limit)]

    async def clear_history(self, older_than_days: int) -> int:
        """Delete closed sessions older than the cutoff; return how many."""
        cutoff = self._clock() - timedelta(days=older_than_days)
        cleared = await self._store.sessions.delete_closed_before(cutoff)
        await self._registry.audit.record(
            "history.clear", detail=f"older_than_days={older_than_days}"
        )
        return cleared

    async def stream_snapshot(
        self, session_id: str | None, subscribe: Callable[[], T]
    ) -> tuple[list[Event], T]:
        """The snapshot a new event stream starts with (contract section 4), and `subscribe()`
        called under the same lock, so no change can fall between the two.

        Without `session_id` the snapshot shows the session this run drives, else the newest
        unclosed one, else only the network.
        """
        async with self._registry.lock:
            session = (
                await self._require(session_id) if session_id else await self._registry.current()
            )
            candidates = await self._registry.candidates_of(session) if session else []
            allowlisted = {e.mac for e in await self._store.allowlist.list()}
            events = views.snapshot_events(
                session, candidates, allowlisted, self._network.status(), self._clock()
            )
            return events, subscribe()

    def network_status(self) -> NetworkStatus:
        """The onboarding network right now."""
        return self._network.status()

    # -- device work (delegated; see devices.py) ------------------------------------------

    async def provision(self, session_id: str, mac: Mac) -> DeviceOutcome:
        """Start provisioning one allowlisted device (harmless when already under way)."""
        return await self._work.provision(session_id, mac)

    async def provision_all(
        self, session_id: str, *, only_allowlisted: bool
    ) -> ProvisionAllOutcome:
        """Start every discovered, admitted device; repeating it starts nothing twice."""
        return await self._work.provision_all(session_id, only_allowlisted=only_allowlisted)

    async def retry(self, session_id: str, mac: Mac) -> DeviceOutcome:
        """Provision a failed device again, within its retry budget."""
        return await self._work.retry(session_id, mac)

    async def skip(self, session_id: str, mac: Mac) -> DeviceOutcome:
        """Give up on a device: it ends `failed`, saying the operator skipped it."""
        return await self._work.skip(session_id, mac)

    async def record(
        self,
        session_id: str,
        mac: Mac,
        event: CandidateEvent,
        failure: Failure | None = None,
        cloud: CloudRegistration | None = None,
    ) -> None:
        """ProgressSink: the engine reports a step of one device."""
        await self._work.record(session_id, mac, event, failure, cloud)

    async def order(self, session_id: str, mac: Mac) -> WorkOrder | None:
        """ProgressSink: what the engine needs for one in-flight device, or None while the
        session is paused, closing or not driven by this run."""
        async with self._registry.lock:
            driven = self._registry.driven.get(session_id)
            if driven is None or driven.session.state not in _WORKING:
                return None
            candidate = driven.candidates.get(mac)
            if candidate is None or not rules.is_in_flight(candidate):
                return None
            sealed = await self._store.sessions.sealed_password(session_id)
            if sealed is None:
                return None
            entry = await self._store.allowlist.get(mac)
            return WorkOrder(
                session_id=session_id,
                mac=mac,
                ip=candidate.ip,
                state=candidate.state,
                target_ssid=driven.session.target_ssid,
                target_password=self._sealer.open(sealed, context=session_id),
                config=driven.session.config,
                container_id=entry.container_id if entry else None,
                cloud=await self._cloud_of(session_id),
            )

    def devices_by_state(self) -> dict[str, int]:
        """Candidates of the driven sessions per state (every state, zeros included)."""
        counts = dict.fromkeys((state.value for state in CandidateState), 0)
        for driven in self._registry.driven.values():
            for candidate in driven.candidates.values():
                counts[candidate.state.value] += 1
        return counts

    async def observe(self, session_id: str, sighting: DeviceSighting) -> None:
        """SessionHooks: discovery saw a device."""
        await self._work.observe(session_id, sighting)

    async def network_changed(self) -> None:
        """SessionHooks: the onboarding network's status changed."""
        await self._registry.network_changed()

    async def finish_discovery(self, session_id: str) -> None:
        """SessionHooks: the discovery deadline passed; `discovering` becomes `active`."""
        async with self._registry.lock:
            driven = self._registry.driven.get(session_id)
            if driven is not None and driven.session.is_open:
                updated = apply_session_event(
                    driven.session, SessionEvent.DISCOVERY_FINISHED, self._clock()
                )
                if updated is not driven.session:
                    await self._registry.save_session(driven, updated, "session.discovery_finished")

    async def expire_if_due(self, session_id: str) -> None:
        """SessionHooks: close the session if its lifetime has run out."""
        async with self._registry.lock:
            with contextlib.suppress(OrchestratorError):
                # _load closes the session on expiry and then reports SESSION_EXPIRED.
                await self._load(session_id)

    # -- internals ----------------------------------------------------------------------

    async def _is_same_request(
        self,
        session: Session,
        ssid: str,
        password: str,
        config: SessionConfig,
        cloud: CloudProvisioning | None,
    ) -> bool:
        if session.run_id != self._run_id or session.target_ssid != ssid:
            return False
        if session.config != config or await self._cloud_of(session.id) != cloud:
            return False
        sealed = await self._store.sessions.sealed_password(session.id)
        return sealed is not None and self._sealer.open(sealed, context=session.id) == password

    async def _cloud_of(self, session_id: str) -> CloudProvisioning | None:
        """The session's cloud registration section, unsealed (secrets inside)."""
        sealed = await self._store.sessions.sealed_cloud(session_id)
        if sealed is None:
            return None
        text = self._sealer.open(sealed, context=_cloud_context(session_id))
        return msgspec.json.decode(text, type=CloudProvisioning)

    async def _require(self, session_id: str) -> Session:
        driven = self._registry.driven.get(session_id)
        session = driven.session if driven else await self._store.sessions.get(session_id)
        if session is None:
            raise OrchestratorError(ErrorCode.SESSION_NOT_FOUND, f"no session {session_id}")
        return session

    async def _load(self, session_id: str) -> Session:
        """The session, expiring it first when its lifetime ran out (410 from then on)."""
        session = await self._require(session_id)
        now = self._clock()
        if is_expired(session, now):
            if session.state is not SessionState.CLOSED:
                await self._close(session, ClosedReason.EXPIRED, "session.expire")
            raise OrchestratorError(
                ErrorCode.SESSION_EXPIRED, f"session {session_id} expired; start a new batch"
            )
        return session

    async def _driven_for(self, session_id: str) -> Driven:
        session = await self._load(session_id)
        driven = self._registry.driven.get(session_id)
        if driven is not None:
            return driven
        if session.state is SessionState.CLOSED:
            raise OrchestratorError(
                ErrorCode.SESSION_ALREADY_CLOSED, f"session {session_id} is closed"
            )
        raise OrchestratorError(
            ErrorCode.SESSION_NOT_RECOVERABLE,
            f"session {session_id} was left open by an earlier run; resume it with "
            f"POST /api/v1/provisioning/sessions/{session_id}/resume first",
        )

    async def _driven_for_work(self, session_id: str) -> Driven:
        driven = await self._driven_for(session_id)
        rules.require_accepting_work(driven.session)
        return driven

    async def _session_event(
        self, session_id: str, event: SessionEvent, action: str
    ) -> SessionView:
        async with self._registry.lock:
            driven = await self._driven_for(session_id)
            updated = apply_session_event(driven.session, event, self._clock())
            if updated is not driven.session:
                await self._registry.save_session(driven, updated, action)
            return await self._view(updated, include_devices=True)

    async def _close(self, session: Session, reason: ClosedReason, action: str) -> None:
        """Closing, then closed: work stops, discovery ends, the network goes down."""
        driven = self._registry.driven.pop(session.id, None)
        if driven is None:
            candidates = await self._store.candidates.list_for(session.id)
            driven = Driven(session=session, candidates={c.mac: c for c in candidates})
        await self._engine.stop_session(session.id)
        if reason is ClosedReason.EXPIRED:
            expired = apply_session_event(session, SessionEvent.EXPIRE, self._clock())
            await self._registry.save_session(driven, expired, action)
        else:
            closing = session
            if session.state is not SessionState.CLOSING:
                closing = apply_session_event(
                    session, SessionEvent.STOP, self._clock(), closed_reason=reason
                )
                await self._registry.save_session(driven, closing, action)
            closed = apply_session_event(closing, SessionEvent.CLOSED, self._clock())
            await self._registry.save_session(driven, closed, "session.closed")
        if not self._registry.driven:
            await self._network.down()
            await self._registry.network_changed()
        # Last, because the caller may be this very task (the expiry timer): cancelling it
        # earlier would interrupt the close half-way.
        if driven.task is not None:
            driven.task.cancel()

    async def _network_up(
        self, action: str, *, session_id: str | None = None, detail: str | None = None
    ) -> None:
        """Bring the onboarding network up; a failure is audited as `action` failed, and
        raised. The network is left as it was when no session needs it."""
        try:
            await self._network.up()
        except OrchestratorError as exc:
            why = f"{detail}: {exc.message}" if detail else exc.message
            await self._registry.audit.record(
                action, Outcome.FAILED, session_id=session_id, detail=why
            )
            log.warning("%s failed: %s", action, exc.message)
            raise

    async def _network_down_if_idle(self) -> None:
        """Undo `_network_up` after a failed start or resume, unless a session needs it."""
        if not self._registry.driven:
            await self._network.down()
            await self._registry.network_changed()

    async def _drive(self, driven: Driven) -> None:
        """Take charge of an open session (its network is up): discovery and timers run."""
        self._registry.driven[driven.session.id] = driven
        await self._registry.network_changed()
        if self._tasks is None:
            raise RuntimeError("BatchService used outside its `async with` block")
        driven.task = self._tasks.create_task(
            drive_session(
                driven.session,
                self,
                devices=self._devices,
                network=self._network,
                clock=self._clock,
                sleep=self._sleep,
            )
        )

    async def _allowlist_entries(self) -> dict[Mac, AllowlistEntry]:
        return {e.mac: e for e in await self._store.allowlist.list()}

    async def _view(self, session: Session, *, include_devices: bool) -> SessionView:
        entries = await self._allowlist_entries() if include_devices else None
        return views.session_view(
            session,
            await self._registry.candidates_of(session),
            entries,
            self._network.status(),
            self._clock(),
        )
