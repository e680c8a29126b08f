"""What clients are shown of a batch: views, request outcomes and event payloads, assembled
from domain state by pure functions (no store, no clock: both come in as arguments)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from datetime import datetime, timedelta

import msgspec

from orchestrator.domain.allowlist import AllowlistEntry
from orchestrator.domain.candidate import PROGRESS, Candidate, CandidateState, CandidateView
from orchestrator.domain.events import (
    DeviceDiscovered,
    DeviceStateChanged,
    Event,
    EventType,
    Payload,
    SessionStatus,
)
from orchestrator.domain.mac import Mac
from orchestrator.domain.network import NetworkStatus
from orchestrator.domain.session import Session, SessionSnapshot, SessionState


class SessionView(msgspec.Struct, frozen=True, kw_only=True):
    """A session with its candidates as clients see them, plus timing and network facts."""

    session: SessionSnapshot
    devices: list[CandidateView]
    network_status: NetworkStatus
    timeout_remaining_s: int | None


class DeviceOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to a single-device request."""

    mac: Mac
    state: CandidateState
    message: str


class ProvisionAllOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to provision-all."""

    initiated_count: int
    skipped_count: int
    message: str


def event(kind: EventType, payload: Payload, session_id: str | None, at: datetime) -> Event:
    """An event envelope."""
    return Event(type=kind, timestamp=at, payload=payload, session_id=session_id)


def in_discovery_order(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Candidates as every list shows them: first seen first, then by MAC."""
    return sorted(candidates, key=lambda c: (c.discovered_at, c.mac))


def state_changed(previous: CandidateState, candidate: Candidate) -> DeviceStateChanged:
    """The device.state_changed payload for `candidate` having left `previous`."""
    failure = candidate.failure if candidate.state is CandidateState.FAILED else None
    return DeviceStateChanged(
        mac=candidate.mac,
        previous_state=previous,
        new_state=candidate.state,
        progress=PROGRESS.get(candidate.state),
        error=failure.message if failure else None,
    )


def discovered(candidate: Candidate, *, in_allowlist: bool) -> DeviceDiscovered:
    """The device.discovered payload of `candidate`."""
    return DeviceDiscovered(
        mac=candidate.mac,
        ip=candidate.ip,
        rssi=candidate.rssi,
        firmware_version=candidate.firmware_version,
        in_allowlist=in_allowlist,
    )


def snapshot_events(
    session: Session | None,
    candidates: Iterable[Candidate],
    allowlisted: Set[Mac],
    network: NetworkStatus,
    now: datetime,
) -> list[Event]:
    """The snapshot a stream starts with (contract section 4): the session, one
    device.discovered per candidate, one device.state_changed (from `discovered`) per candidate
    that moved on, then the network. The `connection.established` frame is the stream's."""
    events: list[Event] = []
    if session is not None:
        ordered = in_discovery_order(candidates)
        snapshot = SessionSnapshot.of(session, ordered)
        events.append(
            event(EventType.SESSION_STATUS, SessionStatus(session=snapshot), session.id, now)
        )
        events += [
            event(
                EventType.DEVICE_DISCOVERED,
                discovered(c, in_allowlist=c.mac in allowlisted),
                session.id,
                now,
            )
            for c in ordered
        ]
        events += [
            event(
                EventType.DEVICE_STATE_CHANGED,
                state_changed(CandidateState.DISCOVERED, c),
                session.id,
                now,
            )
            for c in ordered
            if c.state is not CandidateState.DISCOVERED
        ]
    events.append(event(EventType.NETWORK_STATUS_CHANGED, network, None, now))
    return events


def session_view(
    session: Session,
    candidates: Iterable[Candidate],
    entries: Mapping[Mac, AllowlistEntry] | None,
    network: NetworkStatus,
    now: datetime,
) -> SessionView:
    """GET /batch/{id}; `entries` None leaves the devices out (include_devices=false)."""
    ordered = in_discovery_order(candidates)
    devices = []
    if entries is not None:
        for candidate in ordered:
            entry = entries.get(candidate.mac)
            devices.append(
                CandidateView.of(
                    candidate,
                    in_allowlist=entry is not None,
                    container_id=entry.container_id if entry else None,
                )
            )
    return SessionView(
        session=SessionSnapshot.of(session, ordered),
        devices=devices,
        network_status=network,
        timeout_remaining_s=timeout_remaining(session, now),
    )


def timeout_remaining(session: Session, now: datetime) -> int | None:
    """Seconds left of the current phase: discovery while discovering, else the lifetime."""
    if session.state is SessionState.DISCOVERING:
        deadline = session.created_at + timedelta(seconds=session.config.discovery_timeout_seconds)
    elif session.is_open and session.expires_at is not None:
        deadline = session.expires_at
    else:
        return None
    return max(0, int((deadline - now).total_seconds()))
