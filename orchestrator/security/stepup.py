"""TOTP step-up: one code per time step, short-lived tokens, and a limit on wrong guesses.

A sensitive operation goes through when the request carries a fresh TOTP code of the
appliance's enrolled seed, or a step-up token obtained from one. A code is accepted once: the
store moves the seed's last used step forward with a conditional UPDATE, so of two requests
presenting the same code exactly one wins. Tokens and the failure counts live in memory only
(a restart asks for a new code), tokens as hashes, bound to the API key that stepped up.

Neither the seed, a code nor a token ever reaches a log line, an audit entry or an error.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

import msgspec

from orchestrator.batch.audit import Auditor
from orchestrator.domain.audit import Outcome
from orchestrator.domain.errors import ErrorCode, OrchestratorError
from orchestrator.domain.totp import GatedOperation, TotpEnrollment
from orchestrator.ports.secrets import Sealer
from orchestrator.ports.storage import TotpRepository
from orchestrator.security import totp
from orchestrator.security.secretbox import SecretBoxError

SEAL_CONTEXT = "totp"
"""Associated data the seed is sealed with: a sealed password cannot stand in for it."""
TOTP_CODE_HEADER = "X-TOTP-Code"
STEP_UP_TOKEN_HEADER = "X-Step-Up-Token"  # noqa: S105 - a header name, not a secret
TOKEN_PREFIX = "su_"  # noqa: S105 - tells a step-up token apart from an API key at a glance
ENROLL_HINT = "run `orchestrator totp enroll` on the appliance"

AUDIT_STEP_UP = "auth.step_up"
AUDIT_GATE = "auth.step_up_gate"
AUDIT_ENROLL = "auth.totp_enroll"

DEFAULT_GATED = frozenset(GatedOperation)
"""What decides where devices are sent and whom the appliance trusts, and what erases history."""


class SecuritySettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """TOTP step-up: which operations need it, and its limits."""

    totp_required_for: frozenset[GatedOperation] = DEFAULT_GATED
    """Operations that need a TOTP code or a step-up token; empty turns step-up off (for
    clients that cannot send a code, such as the React dashboard)."""
    step_up_token_ttl_s: Annotated[int, msgspec.Meta(ge=1, le=86_400)] = 600
    totp_issuer: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern="^[^:]+$")] = (
        "Delicasa Orchestrator"
    )
    """The name authenticator apps show beside the code (no colon: it separates the label)."""
    max_failures: Annotated[int, msgspec.Meta(ge=1)] = 5
    failure_window_s: Annotated[int, msgspec.Meta(ge=1)] = 300
    """After `max_failures` wrong codes within this many seconds, codes are refused until
    the oldest of them is this old."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A step-up token, handed to its client once, and when it stops working."""

    token: str
    expires_at: datetime

    def __repr__(self) -> str:
        return f"IssuedToken(token=<redacted>, expires_at={self.expires_at.isoformat()})"


@dataclass(frozen=True, slots=True)
class _Grant:
    actor: str
    expires_at: datetime
    enrolled_at: datetime
    """The seed's enrollment: a token stops working when the seed is replaced."""


async def store_new_seed(repository: TotpRepository, sealer: Sealer, at: datetime) -> str:
    """Generate a seed, store it sealed (replacing any earlier one) and return it in clear,
    for the one moment it is shown to the operator."""
    seed = totp.new_seed()
    await repository.enroll(sealer.seal(seed, SEAL_CONTEXT), at)
    return seed


class StepUp:
    """Checks TOTP codes and step-up tokens for the gated operations."""

    def __init__(
        self,
        repository: TotpRepository,
        sealer: Sealer,
        auditor: Auditor,
        clock: Callable[[], datetime],
        settings: SecuritySettings | None = None,
    ) -> None:
        self._repository = repository
        self._sealer = sealer
        self._auditor = auditor
        self._clock = clock
        self._settings = settings or SecuritySettings()
        self._ttl = timedelta(seconds=self._settings.step_up_token_ttl_s)
        self._window = timedelta(seconds=self._settings.failure_window_s)
        self._failures: dict[str, deque[datetime]] = {}
        self._grants: dict[str, _Grant] = {}

    @property
    def required_for(self) -> frozenset[GatedOperation]:
        """The operations configuration puts behind step-up."""
        return self._settings.totp_required_for

    @property
    def token_ttl_s(self) -> int:
        """How long a step-up token works."""
        return self._settings.step_up_token_ttl_s

    def is_gated(self, operation: GatedOperation) -> bool:
        """Whether `operation` needs step-up."""
        return operation in self._settings.totp_required_for

    async def is_enrolled(self) -> bool:
        """Whether a TOTP seed is enrolled."""
        return await self._repository.get() is not None

    async def enroll(self, actor: str | None = None) -> str:
        """Replace the seed with a new one; return it (show it once, then forget it)."""
        seed = await store_new_seed(self._repository, self._sealer, self._clock())
        self._grants.clear()  # tokens stepped up with the old seed prove nothing any more
        await self._auditor.record(AUDIT_ENROLL, actor=actor, detail="new TOTP seed enrolled")
        return seed

    async def verify_code(self, actor: str, code: str, *, purpose: str = "step-up") -> None:
        """Accept `code` for `actor` once, or raise TOTP_INVALID (wrong or replayed),
        TOTP_EXPIRED, RATE_LIMITED, or UNAUTHORIZED when no seed is enrolled.

        `purpose` (`step-up` or the gated operation) goes into the audit entry.
        """
        enrollment = await self._repository.get()
        if enrollment is None:
            await self._deny(AUDIT_STEP_UP, actor, f"{purpose}: no TOTP seed enrolled")
            raise OrchestratorError(
                ErrorCode.UNAUTHORIZED, f"no TOTP seed is enrolled; {ENROLL_HINT}"
            )
        seed = self._open(enrollment.sealed_seed)
        # Nothing awaits from the limit check to counting a wrong code, so concurrent guesses
        # cannot all slip past the limit before the first of them is counted.
        now = self._clock()
        retry_after = self._retry_after(actor, now)
        if retry_after is not None:
            await self._deny(AUDIT_STEP_UP, actor, f"{purpose}: rate limited")
            raise OrchestratorError(
                ErrorCode.RATE_LIMITED,
                f"too many wrong TOTP codes; try again in {retry_after} s",
                retry_after_s=retry_after,
            )
        verdict = totp.classify(seed, code, now, enrollment.last_used_step)
        if verdict.verdict is totp.Verdict.OK and verdict.step is not None:
            if await self._repository.claim_step(verdict.step):
                self._failures.pop(actor, None)
                await self._auditor.record(AUDIT_STEP_UP, actor=actor, detail=f"{purpose}: ok")
                return
            # Another request presented the same code a moment earlier and won its step.
            verdict = totp.Classification(totp.Verdict.REPLAY, verdict.step)
        self._count_failure(actor, now)
        await self._deny(AUDIT_STEP_UP, actor, f"{purpose}: {verdict.verdict} code")
        raise _code_error(verdict.verdict)

    async def step_up(self, actor: str, code: str) -> IssuedToken:
        """Trade a fresh code for a token that stands in for codes until it expires."""
        await self.verify_code(actor, code)
        return await self.issue_token(actor)

    async def issue_token(self, actor: str) -> IssuedToken:
        """A new step-up token for `actor` (kept only as a hash). Call it only after
        `verify_code` accepted a code of `actor`."""
        enrollment = await self._repository.get()
        if enrollment is None:
            raise OrchestratorError(
                ErrorCode.UNAUTHORIZED, f"no TOTP seed is enrolled; {ENROLL_HINT}"
            )
        now = self._clock()
        self._forget_expired(now)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        grant = _Grant(actor=actor, expires_at=now + self._ttl, enrolled_at=enrollment.enrolled_at)
        self._grants[_digest(token)] = grant
        return IssuedToken(token=token, expires_at=grant.expires_at)

    async def token_is_valid(self, actor: str, token: str) -> bool:
        """Whether `token` was issued to `actor` under the current seed and has not expired."""
        enrollment = await self._repository.get()
        return enrollment is not None and self._token_is_valid(actor, token, enrollment)

    def _token_is_valid(self, actor: str, token: str, enrollment: TotpEnrollment) -> bool:
        # Looked up by hash: a guess must match all 256 bits of a token's digest, so the
        # dict's early exit on a mismatch reveals nothing usable.
        grant = self._grants.get(_digest(token))
        return (
            grant is not None
            and grant.actor == actor
            and grant.enrolled_at == enrollment.enrolled_at
            and self._clock() < grant.expires_at
        )

    async def check(
        self,
        actor: str,
        operation: GatedOperation,
        *,
        code: str | None,
        token: str | None,
    ) -> None:
        """Let `actor` perform `operation` with a valid token or a fresh code, or raise.

        A token is tried first (it costs no code); a request whose token has expired but
        that also carries a code is judged by the code.
        """
        enrollment = await self._repository.get()
        if enrollment is None:
            await self._deny(AUDIT_GATE, actor, f"{operation}: no TOTP seed enrolled")
            raise OrchestratorError(
                ErrorCode.UNAUTHORIZED,
                f"{operation} requires TOTP step-up but no TOTP seed is enrolled; {ENROLL_HINT}, "
                f"or remove {operation} from security.totp_required_for",
            )
        if token and self._token_is_valid(actor, token, enrollment):
            return
        if code:
            await self.verify_code(actor, code, purpose=operation)
            return
        if token:
            await self._deny(AUDIT_GATE, actor, f"{operation}: invalid or expired step-up token")
            raise OrchestratorError(
                ErrorCode.UNAUTHORIZED,
                "the step-up token is invalid or has expired; get a new one from "
                f"POST /api/v1/auth/step-up, or send {TOTP_CODE_HEADER}",
            )
        await self._deny(AUDIT_GATE, actor, f"{operation}: no TOTP code or step-up token")
        raise OrchestratorError(
            ErrorCode.UNAUTHORIZED,
            f"{operation} requires TOTP step-up: send {TOTP_CODE_HEADER} with the current "
            f"code, or {STEP_UP_TOKEN_HEADER} with a token from POST /api/v1/auth/step-up",
        )

    def _open(self, sealed_seed: bytes) -> str:
        try:
            return self._sealer.open(sealed_seed, SEAL_CONTEXT)
        except SecretBoxError as exc:
            raise OrchestratorError(
                ErrorCode.INTERNAL_ERROR,
                f"the TOTP seed does not open with this appliance's secret key; {ENROLL_HINT}",
            ) from exc

    def _retry_after(self, actor: str, now: datetime) -> int | None:
        """Seconds until `actor` may try a code again, or None when it may now."""
        failures = self._failures.get(actor)
        if failures is None:
            return None
        while failures and failures[0] <= now - self._window:
            failures.popleft()
        if not failures:
            del self._failures[actor]
            return None
        if len(failures) < self._settings.max_failures:
            return None
        wait = (failures[0] + self._window - now).total_seconds()
        return max(math.ceil(wait), 1)

    def _count_failure(self, actor: str, now: datetime) -> None:
        # Only the newest `max_failures` matter, so memory per actor stays bounded.
        failures = self._failures.setdefault(actor, deque(maxlen=self._settings.max_failures))
        failures.append(now)

    def _forget_expired(self, now: datetime) -> None:
        for digest in [d for d, grant in self._grants.items() if grant.expires_at <= now]:
            del self._grants[digest]

    async def _deny(self, action: str, actor: str, detail: str) -> None:
        await self._auditor.record(action, Outcome.DENIED, actor=actor, detail=detail)


def _code_error(verdict: totp.Verdict) -> OrchestratorError:
    match verdict:
        case totp.Verdict.EXPIRED:
            return OrchestratorError(
                ErrorCode.TOTP_EXPIRED, "the TOTP code has expired; enter the current code"
            )
        case totp.Verdict.REPLAY:
            return OrchestratorError(
                ErrorCode.TOTP_INVALID,
                "the TOTP code was already used; wait for the next code",
            )
        case _:
            return OrchestratorError(
                ErrorCode.TOTP_INVALID,
                "the TOTP code is wrong; check the authenticator app and the appliance clock",
            )


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
