"""Device records and pair-by-code sessions (seed 000's provisioning repository).

A pairing session binds a short code shown on a device's display to that device for ten
minutes; only an unexpired, unclaimed code may be claimed, and a code is never issued twice.
A code is a short-lived secret: logs and audit entries show at most `code_hint(code)`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta

import msgspec

from orchestrator.domain.errors import ErrorCode, OrchestratorError

PAIRING_TTL = timedelta(minutes=10)
PAIRING_CODE_LENGTH = 6
# No look-alikes: 0/O, 1/I/L, 2/Z, 5/S, 8/B are left out so a code read off a small display
# is typed correctly the first time.
PAIRING_ALPHABET = "34679ACDEFGHJKMNPQRTUVWXY"

CLAIM_PATH = "/console/pair"
"""The console page a device's QR code opens: `<console base URL>/console/pair?code=<CODE>`."""
MAX_CONSOLE_BASE_URL_LENGTH = 100
"""Longest console base URL: its claim link's QR code (SVG) still fits a device request."""


class DeviceRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A device's provisioning configuration (seed 000 `devices` table)."""

    device_id: str
    device_label: str
    server_url: str
    provisioning_status: str
    created_at: datetime
    updated_at: datetime


class PairingSession(msgspec.Struct, frozen=True, kw_only=True):
    """A pairing code shown on one device (seed 000 `provisioning_sessions` table), and who
    claimed it. Pair-by-code uses the device's MAC as `device_id`."""

    pairing_code: str
    device_id: str
    device_ip: str
    created_at: datetime
    expires_at: datetime
    claimed_by: str | None = None
    """The API key id whose claim consumed the code; nobody else can claim it again."""
    claimed_at: datetime | None = None

    def is_expired(self, now: datetime) -> bool:
        """Expired at `expires_at` exactly: a code is valid strictly before it."""
        return now >= self.expires_at

    def is_live(self, now: datetime) -> bool:
        """Unexpired and unclaimed: the code the device should be showing."""
        return self.claimed_by is None and not self.is_expired(now)

    def claimable_by(self, claimant: str, now: datetime) -> bool:
        """Unexpired, and unclaimed or claimed by `claimant` already (a repeated request)."""
        return not self.is_expired(now) and self.claimed_by in (None, claimant)

    def claimed(self, claimant: str, now: datetime) -> PairingSession:
        """This session claimed by `claimant`; a repeated claim keeps the first `claimed_at`."""
        return msgspec.structs.replace(self, claimed_by=claimant, claimed_at=self.claimed_at or now)


def new_pairing_session(
    *, code: str, device_id: str, device_ip: str, now: datetime
) -> PairingSession:
    """A pairing session valid for `PAIRING_TTL` from `now`."""
    return PairingSession(
        pairing_code=code,
        device_id=device_id,
        device_ip=device_ip,
        created_at=now,
        expires_at=now + PAIRING_TTL,
    )


def make_pairing_code(choose: Callable[[str], str]) -> str:
    """A code of `PAIRING_CODE_LENGTH` characters; `choose` is the randomness (e.g.
    `secrets.choice`), injected so the domain stays deterministic under test."""
    return "".join(choose(PAIRING_ALPHABET) for _ in range(PAIRING_CODE_LENGTH))


def is_pairing_code(text: str) -> bool:
    """Whether `text` could be a pairing code (after upper-casing)."""
    code = text.strip().upper()
    return len(code) == PAIRING_CODE_LENGTH and all(c in PAIRING_ALPHABET for c in code)


def parse_pairing_code(text: str) -> str:
    """The canonical (stripped, upper-case) code, or VALIDATION_FAILED. The message never
    repeats what was typed."""
    if not is_pairing_code(text):
        raise OrchestratorError(
            ErrorCode.VALIDATION_FAILED,
            "that is not a pairing code",
            details=(
                f"a pairing code is {PAIRING_CODE_LENGTH} characters from {PAIRING_ALPHABET} "
                "(no 0, O, 1, I, L, 2, Z, 5, S, 8 or B); copy it from the device's display"
            ),
        )
    return text.strip().upper()


def code_hint(code: str) -> str:
    """What logs and audit entries may show of a code: its first character and its length."""
    return code[:1] + "*" * max(len(code) - 1, 0)


def claim_url(console_base_url: str, code: str) -> str:
    """The console link that claims `code` (a trailing slash on the base is ignored)."""
    return f"{console_base_url.rstrip('/')}{CLAIM_PATH}?code={code}"


class FailureWindow:
    """Failures in a sliding window of time: full once `limit` of them are younger than
    `window`. Keeps only the newest `limit` failures, so its memory is bounded."""

    def __init__(self, limit: int, window: timedelta) -> None:
        if limit < 1 or window <= timedelta(0):
            raise ValueError("a failure window needs limit >= 1 and a positive window")
        self._window = window
        self._times: deque[datetime] = deque(maxlen=limit)

    def retry_after(self, now: datetime) -> int | None:
        """Whole seconds until another try is allowed, or None when one is allowed now."""
        while self._times and self._times[0] <= now - self._window:
            self._times.popleft()
        if len(self._times) < (self._times.maxlen or 0):
            return None
        wait = (self._times[0] + self._window - now).total_seconds()
        return max(math.ceil(wait), 1)

    def add(self, now: datetime) -> None:
        """Count one failure at `now`."""
        self._times.append(now)

    def forgive(self, at: datetime) -> None:
        """Take back one failure counted at `at` (if it is still remembered)."""
        if at in self._times:
            self._times.remove(at)

    @property
    def is_empty(self) -> bool:
        """No failure is remembered (after `retry_after` has dropped the old ones)."""
        return not self._times


class GuessLimiter:
    """Wrong pairing codes, limited per claimant (API key) and over all claimants together.

    The overall limit bounds guessing with any number of keys: with `overall` wrong codes per
    `overall_window` and N live codes, a guesser's chance per window is N * overall / 25**6.
    """

    def __init__(
        self,
        *,
        per_claimant: int,
        per_claimant_window: timedelta,
        overall: int,
        overall_window: timedelta,
    ) -> None:
        self._limit = per_claimant
        self._window = per_claimant_window
        self._claimants: dict[str, FailureWindow] = {}
        self._overall = FailureWindow(overall, overall_window)

    def retry_after(self, claimant: str, now: datetime) -> int | None:
        """Seconds until `claimant` may try a code again, or None when it may now."""
        own = self._claimants.get(claimant)
        waits = [self._overall.retry_after(now)]
        if own is not None:
            waits.append(own.retry_after(now))
            if own.is_empty:
                del self._claimants[claimant]
        blocking = [wait for wait in waits if wait is not None]
        return max(blocking) if blocking else None

    def count_failure(self, claimant: str, now: datetime) -> None:
        """Count one wrong code of `claimant`."""
        own = self._claimants.get(claimant)
        if own is None:
            own = self._claimants[claimant] = FailureWindow(self._limit, self._window)
        own.add(now)
        self._overall.add(now)

    def forgive(self, claimant: str, at: datetime) -> None:
        """Take back a failure counted for `claimant` at `at`: counting every try before its
        code is checked, and forgiving the right ones, keeps concurrent tries from all
        passing the limit before the first of them is counted."""
        own = self._claimants.get(claimant)
        if own is not None:
            own.forgive(at)
            if own.is_empty:
                del self._claimants[claimant]
        self._overall.forgive(at)
