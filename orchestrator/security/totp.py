"""RFC 6238 codes (SHA-1, 30 s steps, 6 digits) and what a presented code means at `now`.

pyotp's `verify(valid_window=1)` answers only yes or no, so the matching time step is found
here: the step decides between a fresh code, a replay and an expired one. Pure functions of
(seed, code, now, last used step): no I/O, no clock.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import pyotp

STEP_S = 30
DIGITS = 6
ACCEPT_STEPS = 1
"""Steps either side of now that are accepted: phone and appliance clocks drift (RFC 6238 §6)."""
EXPIRED_STEPS = 10
"""How far back (5 minutes) a right-but-old code is called expired rather than wrong."""


class Verdict(StrEnum):
    """What a presented code is."""

    OK = "ok"
    """Right, within the accepted window, and newer than any code used before."""
    REPLAY = "replay"
    """Right and within the window, but its step (or a newer one) has already been used."""
    EXPIRED = "expired"
    """It was right, but too long ago."""
    INVALID = "invalid"
    """Not a code of this seed anywhere near now."""


@dataclass(frozen=True, slots=True)
class Classification:
    """A verdict and the time step the code matched (None for INVALID)."""

    verdict: Verdict
    step: int | None = None


def time_step(now: datetime) -> int:
    """The RFC 6238 counter at `now`: whole 30 s steps since the Unix epoch."""
    if now.utcoffset() is None:
        raise ValueError("a naive datetime has no instant: give it a timezone")
    return int(now.timestamp()) // STEP_S


def new_seed() -> str:
    """A fresh random seed: 32 base32 characters, 160 bits (RFC 4226 §4's recommendation)."""
    return pyotp.random_base32()


def code_at(seed: str, step: int) -> str:
    """The code of `seed` for time step `step`."""
    return _totp(seed).generate_otp(step)


def provisioning_uri(seed: str, *, account: str, issuer: str) -> str:
    """The `otpauth://totp/...` URI authenticator apps read (it holds the seed: a secret)."""
    return _totp(seed).provisioning_uri(name=account, issuer_name=issuer)


def normalise_code(presented: str) -> str:
    """A presented code without the spaces authenticator apps show inside it."""
    return "".join(presented.split())


def classify(seed: str, presented: str, now: datetime, last_used_step: int) -> Classification:
    """What `presented` means at `now`, given that steps up to `last_used_step` are used.

    Every step of the window is compared, with `hmac.compare_digest`, whether an earlier one
    matched or not, so the time taken does not tell how close a guess was.
    """
    current = time_step(now)
    candidate = normalise_code(presented).encode()
    well_formed = len(candidate) == DIGITS and candidate.isdigit()
    totp = _totp(seed)
    accepted: list[int] = []
    expired: list[int] = []
    for step in range(max(current - EXPIRED_STEPS, 0), current + ACCEPT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step).encode(), candidate) and well_formed:
            (accepted if step >= current - ACCEPT_STEPS else expired).append(step)
    if accepted:
        # A code matching two steps (a 1-in-a-million collision) claims the newer one, so
        # the same digits cannot be used again at that step either.
        step = max(accepted)
        return Classification(Verdict.OK if step > last_used_step else Verdict.REPLAY, step)
    if expired:
        return Classification(Verdict.EXPIRED, max(expired))
    return Classification(Verdict.INVALID)


def _totp(seed: str) -> pyotp.TOTP:
    return pyotp.TOTP(seed, digits=DIGITS, interval=STEP_S)
