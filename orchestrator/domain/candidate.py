"""The provisioning candidate lifecycle: one transition table, and the candidate's read model.

A candidate is one device seen during one session. Retry and skip are ordinary transitions with
guards (the retry budget), so the API, the engine and the tests all share one set of rules.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec

from orchestrator.domain.errors import ErrorCode, OrchestratorError
from orchestrator.domain.mac import Mac


class CandidateState(StrEnum):
    """Persisted and streamed: never rename a value."""

    DISCOVERED = "discovered"
    PROVISIONING = "provisioning"
    PROVISIONED = "provisioned"
    VERIFYING = "verifying"
    VERIFIED = "verified"
    FAILED = "failed"


class CandidateEvent(StrEnum):
    """What can happen to a candidate."""

    PROVISION = "provision"
    DELIVERED = "delivered"
    VERIFY = "verify"
    VERIFIED = "verified"
    FAIL = "fail"
    RETRY = "retry"
    SKIP = "skip"


_C, _V = CandidateState, CandidateEvent
_IN_FLIGHT = (_C.PROVISIONING, _C.PROVISIONED, _C.VERIFYING)

CANDIDATE_TRANSITIONS: dict[tuple[CandidateState, CandidateEvent], CandidateState] = {
    (_C.DISCOVERED, _V.PROVISION): _C.PROVISIONING,
    (_C.PROVISIONING, _V.DELIVERED): _C.PROVISIONED,
    (_C.PROVISIONED, _V.VERIFY): _C.VERIFYING,
    (_C.VERIFYING, _V.VERIFIED): _C.VERIFIED,
    **{(state, _V.FAIL): _C.FAILED for state in _IN_FLIGHT},
    (_C.FAILED, _V.RETRY): _C.PROVISIONING,
    **{(state, _V.SKIP): _C.FAILED for state in (_C.DISCOVERED, *_IN_FLIGHT, _C.FAILED)},
}
"""Every legal move. Guards that need more than the state (the retry budget) live in `apply`."""

PROGRESS: dict[CandidateState, int] = {
    _C.DISCOVERED: 0,
    _C.PROVISIONING: 25,
    _C.PROVISIONED: 50,
    _C.VERIFYING: 75,
    _C.VERIFIED: 100,
}
"""Coarse progress (0-100) per state for dashboards; a failed device has none."""

SKIPPED_REASON = "skipped"


class Failure(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Why a device failed: a machine-readable reason plus words a technician can act on.

    `reason` is a short token (`skipped`, `auth_error`, `network_not_found`, ...); `code` is the
    contract code when one applies (a skip has none: nothing went wrong).
    """

    reason: str
    message: str
    code: ErrorCode | None = None


class CloudRegistration(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What a verified device reported about registering with the session's cloud."""

    registered: bool
    device_name: str | None = None
    message: str | None = None


class Candidate(msgspec.Struct, frozen=True, kw_only=True):
    """One device in one session."""

    session_id: str
    mac: Mac
    ip: str
    state: CandidateState
    rssi: int
    firmware_version: str
    discovered_at: datetime
    updated_at: datetime
    retry_count: int = 0
    provisioned_at: datetime | None = None
    verified_at: datetime | None = None
    failure: Failure | None = None
    cloud: CloudRegistration | None = None


def apply_candidate_event(
    candidate: Candidate,
    event: CandidateEvent,
    now: datetime,
    *,
    max_retries: int,
    failure: Failure | None = None,
    cloud: CloudRegistration | None = None,
) -> Candidate:
    """Return `candidate` after `event`, or raise the contract error for an illegal move.

    FAIL needs a `failure`; SKIP records the operator's decision as the failure reason;
    VERIFIED keeps what the device said about its cloud registration.
    """
    target = CANDIDATE_TRANSITIONS.get((candidate.state, event))
    if target is None:
        raise OrchestratorError(
            ErrorCode.DEVICE_INVALID_STATE,
            f"cannot {event} device {candidate.mac}: it is {candidate.state}",
        )
    changes: dict[str, object] = {"state": target, "updated_at": now}
    match event:
        case CandidateEvent.RETRY:
            if candidate.retry_count >= max_retries:
                raise OrchestratorError(
                    ErrorCode.MAX_RETRIES_EXCEEDED,
                    f"device {candidate.mac} has used all {max_retries} retries",
                )
            changes |= {"retry_count": candidate.retry_count + 1, "failure": None, "cloud": None}
        case CandidateEvent.DELIVERED:
            changes["provisioned_at"] = now
        case CandidateEvent.VERIFIED:
            changes["verified_at"] = now
            changes["cloud"] = cloud
        case CandidateEvent.FAIL:
            if failure is None:
                raise ValueError("FAIL needs a failure reason")
            changes["failure"] = failure
        case CandidateEvent.SKIP:
            changes["failure"] = Failure(
                reason=SKIPPED_REASON, message="skipped by the operator; retry to provision it"
            )
        case _:
            pass
    return msgspec.structs.replace(candidate, **changes)


def is_skipped(candidate: Candidate) -> bool:
    """Whether the operator skipped this device (skip ends `failed`; there is no skipped state)."""
    return candidate.failure is not None and candidate.failure.reason == SKIPPED_REASON


class CandidateView(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A candidate as clients see it (contract ProvisioningCandidate)."""

    mac: Mac
    ip: str
    state: CandidateState
    rssi: int
    firmware_version: str
    discovered_at: datetime
    retry_count: int
    in_allowlist: bool
    provisioned_at: datetime | None = None
    verified_at: datetime | None = None
    error_message: str | None = None
    container_id: str | None = None
    cloud_registration: CloudRegistration | None = None
    """Set for verified devices that were asked to register with the session's cloud."""

    @classmethod
    def of(
        cls, candidate: Candidate, *, in_allowlist: bool, container_id: str | None
    ) -> CandidateView:
        """The read model; allowlist facts are looked up live, so edits show at once."""
        return cls(
            mac=candidate.mac,
            ip=candidate.ip,
            state=candidate.state,
            rssi=candidate.rssi,
            firmware_version=candidate.firmware_version,
            discovered_at=candidate.discovered_at,
            retry_count=candidate.retry_count,
            in_allowlist=in_allowlist,
            provisioned_at=candidate.provisioned_at,
            verified_at=candidate.verified_at,
            error_message=candidate.failure.message if candidate.failure else None,
            container_id=container_id,
            cloud_registration=candidate.cloud,
        )
