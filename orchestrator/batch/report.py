"""Batch reports: what became of every device of a session, with the states it went through
and when, for people (JSON) and spreadsheets (CSV).

A report is assembled from the store: the session, its candidates, their latest provisioning
attempts and the audit trail, whose `device.*` entries record every state change as
`previous->new` (plus the failure message). It never holds a secret: no Wi-Fi password, no
cloud key or secret, no attempt nonce and no broker account.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

import msgspec

from orchestrator.domain.allowlist import AllowlistEntry
from orchestrator.domain.attempt import Attempt, AttemptPhase
from orchestrator.domain.audit import AuditEntry
from orchestrator.domain.candidate import Candidate, CandidateState, CloudRegistration
from orchestrator.domain.errors import ErrorCode, OrchestratorError
from orchestrator.domain.mac import Mac
from orchestrator.domain.session import (
    ClosedReason,
    CloudTarget,
    Session,
    SessionConfig,
    SessionCounts,
    SessionState,
)
from orchestrator.ports.storage import AuditQuery, Store

_AUDIT_PAGE = 500
_DEVICE_ACTION_PREFIX = "device."
_DISCOVERED_ACTION = "device.discovered"
# `previous->new` or `previous->new: message` (see Registry._after_move).
_MOVE = re.compile(r"^(?P<old>[a-z]+)->(?P<new>[a-z]+)(?:: (?P<error>.*))?$", re.DOTALL)
_STATES = frozenset(state.value for state in CandidateState)


class StateChange(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One step of a device: the state it entered, when, and what moved it there."""

    at: datetime
    state: CandidateState
    action: str
    """The audited action: `device.discovered`, `device.provision`, `device.fail`, ..."""
    actor: str
    """The API key id of the operator, or `system` for the appliance itself."""
    previous_state: CandidateState | None = None
    error: str | None = None
    """Why it failed, when it entered `failed`."""


class AttemptSummary(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A device's latest provisioning attempt (no nonce, no broker account)."""

    number: int
    phase: AttemptPhase
    strategy: str
    started_at: datetime
    updated_at: datetime
    delivered_at: datetime | None = None
    failure_reason: str | None = None


class DeviceReport(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One device of the session: where it ended, how it got there, and why it failed."""

    mac: Mac
    state: CandidateState
    in_allowlist: bool
    ip: str
    rssi: int
    firmware_version: str
    discovered_at: datetime
    retry_count: int
    attempt_count: int
    """Provisioning attempts made (each operator retry or resume may add one)."""
    states: list[StateChange]
    description: str | None = None
    container_id: str | None = None
    provisioned_at: datetime | None = None
    verified_at: datetime | None = None
    failed_at: datetime | None = None
    failure_reason: str | None = None
    """A short token: `auth_error`, `network_not_found`, `skipped`, ..."""
    failure_code: ErrorCode | None = None
    failure_message: str | None = None
    last_attempt: AttemptSummary | None = None
    cloud_registration: CloudRegistration | None = None


class SessionSummary(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The session the report is about, with its counts."""

    id: str
    state: SessionState
    target_ssid: str
    created_at: datetime
    updated_at: datetime
    config: SessionConfig
    device_count: int
    provisioned_count: int
    verified_count: int
    failed_count: int
    devices_by_state: dict[CandidateState, int]
    """Every candidate state, zeros included."""
    expires_at: datetime | None = None
    closed_reason: ClosedReason | None = None
    cloud: CloudTarget | None = None
    """Where devices registered (never the provisioning key or secret)."""


class BatchReport(msgspec.Struct, frozen=True, kw_only=True):
    """GET /sessions/{id}/report."""

    generated_at: datetime
    session: SessionSummary
    devices: list[DeviceReport]


def build_report(
    session: Session,
    candidates: Iterable[Candidate],
    *,
    allowlist: Mapping[Mac, AllowlistEntry],
    attempts: Iterable[Attempt],
    audit: Iterable[AuditEntry],
    now: datetime,
) -> BatchReport:
    """The report of `session` (pure: every fact comes in as an argument). `audit` may hold
    entries of other sessions and actions: only this session's `device.*` ones are used."""
    ordered = sorted(candidates, key=lambda c: (c.discovered_at, c.mac))
    latest = {a.mac: a for a in attempts if a.session_id == session.id}
    changes: dict[Mac, list[tuple[int, StateChange]]] = {}
    for entry in audit:
        change = _state_change(entry, session.id)
        if change is not None and entry.mac is not None:
            changes.setdefault(entry.mac, []).append((entry.id or 0, change))
    devices = []
    for candidate in ordered:
        history = [c for _, c in sorted(changes.get(candidate.mac, []), key=lambda p: p[0])]
        devices.append(
            _device(candidate, allowlist.get(candidate.mac), latest.get(candidate.mac), history)
        )
    return BatchReport(generated_at=now, session=_summary(session, ordered), devices=devices)


def _state_change(entry: AuditEntry, session_id: str) -> StateChange | None:
    if entry.session_id != session_id or not entry.action.startswith(_DEVICE_ACTION_PREFIX):
        return None
    if entry.action == _DISCOVERED_ACTION:
        return StateChange(
            at=entry.at, state=CandidateState.DISCOVERED, action=entry.action, actor=entry.actor
        )
    match = _MOVE.match(entry.detail or "")
    if match is None or not {match["old"], match["new"]} <= _STATES:
        return None
    return StateChange(
        at=entry.at,
        state=CandidateState(match["new"]),
        previous_state=CandidateState(match["old"]),
        action=entry.action,
        actor=entry.actor,
        error=match["error"],
    )


def _fallback_history(candidate: Candidate) -> list[StateChange]:
    """States from the candidate's own timestamps, for a device the audit trail lacks."""
    steps = [
        (candidate.discovered_at, CandidateState.DISCOVERED),
        (candidate.provisioned_at, CandidateState.PROVISIONED),
        (candidate.verified_at, CandidateState.VERIFIED),
    ]
    return [
        StateChange(at=at, state=state, action="device.recorded", actor="system")
        for at, state in steps
        if at is not None
    ]


def _device(
    candidate: Candidate,
    entry: AllowlistEntry | None,
    attempt: Attempt | None,
    history: list[StateChange],
) -> DeviceReport:
    history = history or _fallback_history(candidate)
    failure = candidate.failure if candidate.state is CandidateState.FAILED else None
    failed_at = None
    if failure is not None:
        failed_at = next(
            (c.at for c in reversed(history) if c.state is CandidateState.FAILED),
            candidate.updated_at,
        )
    return DeviceReport(
        mac=candidate.mac,
        state=candidate.state,
        in_allowlist=entry is not None,
        description=entry.description if entry else None,
        container_id=entry.container_id if entry else None,
        ip=candidate.ip,
        rssi=candidate.rssi,
        firmware_version=candidate.firmware_version,
        discovered_at=candidate.discovered_at,
        provisioned_at=candidate.provisioned_at,
        verified_at=candidate.verified_at,
        failed_at=failed_at,
        retry_count=candidate.retry_count,
        attempt_count=attempt.number if attempt else 0,
        last_attempt=_attempt(attempt) if attempt else None,
        failure_reason=failure.reason if failure else None,
        failure_code=failure.code if failure else None,
        failure_message=failure.message if failure else None,
        cloud_registration=candidate.cloud,
        states=history,
    )


def _attempt(attempt: Attempt) -> AttemptSummary:
    # Deliberately field by field: the attempt also holds its nonce and broker account.
    return AttemptSummary(
        number=attempt.number,
        phase=attempt.phase,
        strategy=attempt.strategy,
        started_at=attempt.created_at,
        updated_at=attempt.updated_at,
        delivered_at=attempt.delivered_at,
        failure_reason=attempt.failure_reason,
    )


def _summary(session: Session, candidates: list[Candidate]) -> SessionSummary:
    counts = SessionCounts.of(candidates)
    by_state = dict.fromkeys(CandidateState, 0)
    for candidate in candidates:
        by_state[candidate.state] += 1
    return SessionSummary(
        id=session.id,
        state=session.state,
        target_ssid=session.target_ssid,
        created_at=session.created_at,
        updated_at=session.updated_at,
        expires_at=session.expires_at,
        closed_reason=session.closed_reason,
        config=session.config,
        cloud=session.cloud,
        device_count=counts.device_count,
        provisioned_count=counts.provisioned_count,
        verified_count=counts.verified_count,
        failed_count=counts.failed_count,
        devices_by_state=by_state,
    )


# -- CSV ----------------------------------------------------------------------------------

CSV_COLUMNS = (
    "session_id",
    "target_ssid",
    "mac",
    "state",
    "in_allowlist",
    "description",
    "container_id",
    "ip",
    "rssi",
    "firmware_version",
    "discovered_at",
    "provisioned_at",
    "verified_at",
    "failed_at",
    "retry_count",
    "attempt_count",
    "last_attempt_phase",
    "failure_reason",
    "failure_code",
    "failure_message",
    "cloud_registered",
    "cloud_device_name",
    "cloud_message",
    "states",
)
"""One row per device, in this order, after a header row."""

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def report_csv(report: BatchReport) -> str:
    """The report as CSV (RFC 4180: CRLF line ends, quoted where needed), one row per device;
    `states` lists `<time> <state>` steps separated by ` | `."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    session = report.session
    for device in report.devices:
        cloud = device.cloud_registration
        row: dict[str, str] = {
            "session_id": session.id,
            "target_ssid": _text(session.target_ssid),
            "mac": device.mac,
            "state": device.state,
            "in_allowlist": _flag(device.in_allowlist),
            "description": _text(device.description),
            "container_id": _text(device.container_id),
            "ip": device.ip,
            "rssi": str(device.rssi),
            "firmware_version": _text(device.firmware_version),
            "discovered_at": _time(device.discovered_at),
            "provisioned_at": _time(device.provisioned_at),
            "verified_at": _time(device.verified_at),
            "failed_at": _time(device.failed_at),
            "retry_count": str(device.retry_count),
            "attempt_count": str(device.attempt_count),
            "last_attempt_phase": device.last_attempt.phase if device.last_attempt else "",
            "failure_reason": _text(device.failure_reason),
            "failure_code": device.failure_code or "",
            "failure_message": _text(device.failure_message),
            "cloud_registered": _flag(cloud.registered) if cloud else "",
            "cloud_device_name": _text(cloud.device_name) if cloud else "",
            "cloud_message": _text(cloud.message) if cloud else "",
            "states": _text(" | ".join(_step(c) for c in device.states)),
        }
        writer.writerow([row[column] for column in CSV_COLUMNS])
    return buffer.getvalue()


def _step(change: StateChange) -> str:
    step = f"{_time(change.at)} {change.state}"
    return f"{step} ({change.error})" if change.error else step


def _time(at: datetime | None) -> str:
    if at is None:
        return ""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _flag(value: bool) -> str:  # noqa: FBT001 - a formatter of one boolean
    return "yes" if value else "no"


def _text(value: str | None) -> str:
    """Free text, defused: a spreadsheet would run a cell starting with `=` as a formula
    (OWASP CSV injection), so such a cell gets a leading apostrophe."""
    if not value:
        return ""
    return "'" + value if value.startswith(_FORMULA_START) else value


# -- the use case --------------------------------------------------------------------------


class ReportService:
    """Reports of any session (open, closed or left by an earlier run), read from the store."""

    def __init__(self, store: Store, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock

    async def report(self, session_id: str) -> BatchReport:
        """The report of `session_id`, or SESSION_NOT_FOUND."""
        session = await self._store.sessions.get(session_id)
        if session is None:
            raise OrchestratorError(ErrorCode.SESSION_NOT_FOUND, f"no session {session_id}")
        candidates = await self._store.candidates.list_for(session_id)
        allowlist = {e.mac: e for e in await self._store.allowlist.list()}
        attempts = await self._store.attempts.latest_for_session(session_id)
        audit: list[AuditEntry] = []
        for candidate in candidates:
            audit += await self._device_audit(session, candidate.mac)
        return build_report(
            session,
            candidates,
            allowlist=allowlist,
            attempts=attempts,
            audit=audit,
            now=self._clock(),
        )

    async def _device_audit(self, session: Session, mac: Mac) -> list[AuditEntry]:
        """Every audit entry of `mac` since the session began (by MAC: that is indexed)."""
        entries: list[AuditEntry] = []
        before_id: int | None = None
        while True:
            query = AuditQuery(
                mac=mac, since=session.created_at, before_id=before_id, limit=_AUDIT_PAGE
            )
            page = await self._store.audit.page(query)
            entries += [e for e in page if e.session_id == session.id]
            if len(page) < _AUDIT_PAGE or page[-1].id is None:
                return entries
            before_id = page[-1].id
