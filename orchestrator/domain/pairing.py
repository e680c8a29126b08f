"""Device records and pair-by-code sessions (seed 000's provisioning repository).

A pairing session binds a short code shown on a device's display to that device for ten
minutes; only an unexpired code may be claimed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import msgspec

PAIRING_TTL = timedelta(minutes=10)
PAIRING_CODE_LENGTH = 6
# No look-alikes: 0/O, 1/I/L, 2/Z, 5/S, 8/B are left out so a code read off a small display
# is typed correctly the first time.
PAIRING_ALPHABET = "34679ACDEFGHJKMNPQRTUVWXY"


class DeviceRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A device's provisioning configuration (seed 000 `devices` table)."""

    device_id: str
    device_label: str
    server_url: str
    provisioning_status: str
    created_at: datetime
    updated_at: datetime


class PairingSession(msgspec.Struct, frozen=True, kw_only=True):
    """A pairing code shown on one device (seed 000 `provisioning_sessions` table)."""

    pairing_code: str
    device_id: str
    device_ip: str
    created_at: datetime
    expires_at: datetime

    def is_expired(self, now: datetime) -> bool:
        """Expired at `expires_at` exactly: a code is valid strictly before it."""
        return now >= self.expires_at


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
