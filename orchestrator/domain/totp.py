"""TOTP step-up: the operations a code can gate, and the appliance's stored enrollment."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec


class GatedOperation(StrEnum):
    """Sensitive operations that configuration may put behind TOTP step-up.

    Values are configuration and wire vocabulary (`security.totp_required_for`, GET
    /api/v1/auth/status): never rename them.
    """

    SESSION_START = "session.start"
    """Starting a batch session: it decides where devices are sent."""
    ALLOWLIST_WRITE = "allowlist.write"
    """Any allowlist change: it decides whom the appliance trusts."""
    SESSION_DISCARD = "session.discard"
    """Discarding a recoverable session."""
    HISTORY_CLEAR = "history.clear"
    """Deleting closed sessions from the history."""


NO_STEP_USED = -1
"""`last_used_step` of an enrollment no code has been accepted for yet."""


class TotpEnrollment(msgspec.Struct, frozen=True, kw_only=True):
    """The appliance's one TOTP seed, sealed (never in clear), and the newest RFC 6238 time
    step a code was accepted for: codes of that step and older ones are refused as replays."""

    sealed_seed: bytes
    enrolled_at: datetime
    last_used_step: int = NO_STEP_USED
