"""Device work in a driven session: provisioning requests from the API (provision, provision
all, retry, skip), outcomes reported by the engine, and devices seen by discovery."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import msgspec

from orchestrator.batch import readmodels as views
from orchestrator.batch.readmodels import DeviceOutcome, ProvisionAllOutcome
from orchestrator.batch.registry import Driven, Registry
from orchestrator.domain import batch as rules
from orchestrator.domain.audit import SYSTEM_ACTOR
from orchestrator.domain.candidate import (
    Candidate,
    CandidateEvent,
    CandidateState,
    CloudRegistration,
    Failure,
)
from orchestrator.domain.errors import ErrorCode, OrchestratorError
from orchestrator.domain.events import EventType
from orchestrator.domain.mac import Mac
from orchestrator.ports.devices import DeviceSighting, Engine
from orchestrator.protocol.messages import DeviceState

log = logging.getLogger(__name__)

Acquire = Callable[[str], Awaitable[Driven]]
"""Looks a driven session up (expiring it when due; `acquire_for_work` also refuses a paused
session); called with the registry's lock held."""


class _Decision(Protocol):
    """A domain rule choosing the event a device request causes (None: already under way)."""

    def __call__(self, candidate: Candidate, *, in_allowlist: bool) -> CandidateEvent | None: ...


class PairingOffers(Protocol):
    """Pair-by-code: what discovery tells it."""

    async def offer(self, mac: Mac, ip: str) -> None:
        """A device not on the allowlist asks to pair: show it a code."""
        ...


class DeviceWork:
    """The device use cases of the sessions in `registry`."""

    def __init__(
        self,
        registry: Registry,
        engine: Engine,
        *,
        acquire: Acquire,
        acquire_for_work: Acquire,
        pairing: PairingOffers | None = None,
    ) -> None:
        self._registry = registry
        self._engine = engine
        self._acquire = acquire
        self._acquire_for_work = acquire_for_work
        self._pairing = pairing

    async def provision(self, session_id: str, mac: Mac) -> DeviceOutcome:
        """Start provisioning one allowlisted device (harmless when already under way)."""
        candidate, started = await self._start_work(
            session_id, mac, rules.provision_decision, "device.provision"
        )
        message = "provisioning started" if started else "provisioning already under way"
        return DeviceOutcome(mac=mac, state=candidate.state, message=message)

    async def provision_all(
        self, session_id: str, *, only_allowlisted: bool
    ) -> ProvisionAllOutcome:
        """Start every discovered, admitted device; repeating it starts nothing twice."""
        async with self._registry.lock:
            driven = await self._acquire_for_work(session_id)
            allowlisted = {e.mac for e in await self._registry.store.allowlist.list()}
            plan = rules.plan_provision_all(
                driven.candidates.values(), allowlisted, only_allowlisted=only_allowlisted
            )
            await self._registry.move_many(driven, plan.start, CandidateEvent.PROVISION)
            await self._registry.audit.record(
                "batch.provision_all",
                session_id=session_id,
                detail=f"initiated={len(plan.start)} skipped={len(plan.skipped)} "
                f"only_allowlisted={only_allowlisted}",
            )
        if plan.start:
            await self._engine.submit(session_id, list(plan.start))
        skipped_note = f", {len(plan.skipped)} not on the allowlist" if plan.skipped else ""
        return ProvisionAllOutcome(
            initiated_count=len(plan.start),
            skipped_count=len(plan.skipped),
            message=f"provisioning {len(plan.start)} devices{skipped_note}",
        )

    async def retry(self, session_id: str, mac: Mac) -> DeviceOutcome:
        """Provision a failed device again, within its retry budget."""
        candidate, started = await self._start_work(
            session_id, mac, rules.retry_decision, "device.retry"
        )
        message = (
            f"retry {candidate.retry_count} started"
            if started
            else "provisioning already under way"
        )
        return DeviceOutcome(mac=mac, state=candidate.state, message=message)

    async def _start_work(
        self,
        session_id: str,
        mac: Mac,
        decide: _Decision,
        action: str,
    ) -> tuple[Candidate, bool]:
        """Apply the event `decide` picks and hand the device to the engine; (candidate,
        False) when the work is already under way (a repeated request changes nothing)."""
        async with self._registry.lock:
            driven = await self._acquire_for_work(session_id)
            candidate = self._registry.candidate(driven, mac)
            in_allowlist = await self._registry.store.allowlist.get(mac) is not None
            event = decide(candidate, in_allowlist=in_allowlist)
            if event is None:
                return candidate, False
            updated = await self._registry.move(driven, candidate, event, action)
        await self._engine.submit(session_id, [mac])
        return updated, True

    async def skip(self, session_id: str, mac: Mac) -> DeviceOutcome:
        """Give up on a device: it ends `failed`, saying the operator skipped it."""
        async with self._registry.lock:
            driven = await self._acquire(session_id)
            candidate = self._registry.candidate(driven, mac)
            if candidate.state is CandidateState.VERIFIED:
                raise OrchestratorError(
                    ErrorCode.DEVICE_INVALID_STATE, f"device {mac} is already verified"
                )
            was_in_flight = rules.is_in_flight(candidate)
            updated = await self._registry.move(
                driven, candidate, CandidateEvent.SKIP, "device.skip"
            )
        if was_in_flight:
            await self._engine.cancel(session_id, mac)
        message = updated.failure.message if updated.failure else "skipped"
        return DeviceOutcome(mac=mac, state=updated.state, message=message)

    async def record(
        self,
        session_id: str,
        mac: Mac,
        event: CandidateEvent,
        failure: Failure | None = None,
        cloud: CloudRegistration | None = None,
    ) -> None:
        """ProgressSink: the engine reports a step of one device. A verified device marks
        its allowlist entry used. A report the candidate can no longer take (the operator
        skipped it, the device reported its own failure first) is logged and dropped."""
        async with self._registry.lock:
            driven = self._registry.driven.get(session_id)
            if driven is None or mac not in driven.candidates:
                log.warning("engine reported %s for %s outside a driven session", event, mac)
                return
            try:
                await self._registry.move(
                    driven, driven.candidates[mac], event, f"device.{event}", failure, cloud=cloud
                )
            except OrchestratorError as error:
                if error.code is not ErrorCode.DEVICE_INVALID_STATE:
                    raise
                log.info("engine report %s for %s dropped: %s", event, mac, error.message)
                return
            if event is CandidateEvent.VERIFIED:
                await self._mark_used(mac)

    async def _mark_used(self, mac: Mac) -> None:
        allowlist = self._registry.store.allowlist
        entry = await allowlist.get(mac)
        if entry is not None and entry.used_at is None:
            await allowlist.put(msgspec.structs.replace(entry, used_at=self._registry.clock()))

    async def observe(self, session_id: str, sighting: DeviceSighting) -> None:
        """Discovery saw a device: a new MAC becomes a `discovered` candidate, a known one is
        refreshed, a failure the device reports fails (or explains) its attempt, and a device
        asking to pair that is not on the allowlist is shown a code."""
        if not sighting.present:
            return  # the network's station count tells who left; the candidate stays
        async with self._registry.lock:
            driven = self._registry.driven.get(session_id)
            if driven is None or not driven.session.is_open:
                return
            in_allowlist = await self._registry.store.allowlist.get(sighting.mac) is not None
            known = driven.candidates.get(sighting.mac)
            failed = False
            if known is None:
                await self._discovered(driven, sighting, in_allowlist=in_allowlist)
            else:
                failed = await self._refreshed(driven, known, sighting)
        if failed:
            # The device is back with its reason: the engine stops waiting for its proof.
            await self._engine.cancel(session_id, sighting.mac)
        if sighting.state == DeviceState.PAIRING and not in_allowlist and self._pairing:
            await self._pairing.offer(sighting.mac, sighting.ip)

    async def _discovered(
        self, driven: Driven, sighting: DeviceSighting, *, in_allowlist: bool
    ) -> None:
        now = self._registry.clock()
        candidate = Candidate(
            session_id=driven.session.id,
            mac=sighting.mac,
            ip=sighting.ip,
            state=CandidateState.DISCOVERED,
            rssi=sighting.rssi,
            firmware_version=sighting.firmware_version,
            discovered_at=now,
            updated_at=now,
        )
        await self._registry.store.candidates.save(candidate)
        driven.candidates[candidate.mac] = candidate
        await self._registry.audit.record(
            "device.discovered",
            session_id=driven.session.id,
            mac=candidate.mac,
            actor=SYSTEM_ACTOR,
            detail=f"{sighting.family} {sighting.model} firmware {sighting.firmware_version}",
        )
        await self._registry.publish(
            EventType.DEVICE_DISCOVERED,
            views.discovered(candidate, in_allowlist=in_allowlist),
            driven.session.id,
        )
        await self._registry.publish_session(driven)

    async def _refreshed(self, driven: Driven, known: Candidate, sighting: DeviceSighting) -> bool:
        """Refresh a known candidate; True when the device's report failed its attempt."""
        seen = (sighting.ip, sighting.rssi, sighting.firmware_version)
        if seen != (known.ip, known.rssi, known.firmware_version):
            known = msgspec.structs.replace(
                known,
                ip=sighting.ip,
                rssi=sighting.rssi,
                firmware_version=sighting.firmware_version,
                updated_at=self._registry.clock(),
            )
            driven.candidates[known.mac] = known
            await self._registry.store.candidates.save(known)
        failure = sighting.failure
        if failure is None or sighting.state != DeviceState.FAILED:
            return False
        match rules.reported_failure(known, failure):
            case rules.ReportedFailure.FAIL:
                await self._registry.move(
                    driven, known, CandidateEvent.FAIL, "device.failure_reported", failure
                )
                return True
            case rules.ReportedFailure.AMEND:
                await self._registry.amend_failure(driven, known, failure)
            case rules.ReportedFailure.IGNORE:
                pass
        return False
