"""Fault profiles for simulated devices, and their seeded assignment over a fleet."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from enum import StrEnum
from types import MappingProxyType

import msgspec

from orchestrator.device.errors import AgentError
from orchestrator.protocol.messages import FailureReason


class FaultProfile(StrEnum):
    """How a simulated device misbehaves. Values are configuration: never rename them."""

    NONE = "none"
    """Behaves as the protocol says."""
    UNREACHABLE = "unreachable"
    """Its HTTP API accepts connections but never answers (until the client gives up)."""
    SLOW = "slow"
    """Every HTTP answer comes `slow_answer_s` late."""
    REJECTS_CREDENTIALS = "rejects_credentials"
    """Refuses every credential delivery with 400 invalid_request; never leaves."""
    WRONG_PASSWORD = "wrong_password"  # noqa: S105 - a profile name, not a secret
    """Every join fails with auth_error, even with the right password; comes back failed."""
    NETWORK_NOT_FOUND = "network_not_found"
    """Every join fails with network_not_found; comes back failed."""
    NEVER_ONLINE = "never_online"
    """Accepts, leaves and joins the target network, but never connects to MQTT."""
    LATE = "late"
    """Reboots twice before reporting: two will messages (offline) `reboot_s` apart, then online."""
    FLAPS = "flaps"
    """Comes online, loses the connection after `flap_s` (the will says offline), online again."""
    STALE_RETAINED = "stale_retained"
    """First leaves a retained online with an old nonce, then after `stale_gap_s` the real one."""


JOIN_FAULTS: Mapping[FaultProfile, FailureReason] = MappingProxyType(
    {
        FaultProfile.WRONG_PASSWORD: FailureReason.AUTH_ERROR,
        FaultProfile.NETWORK_NOT_FOUND: FailureReason.NETWORK_NOT_FOUND,
    }
)
"""Profiles whose every join attempt fails, and the reason they report."""

LATE_REBOOTS = 2


class FaultPlanError(AgentError):
    """Shares that do not describe a fleet (negative, over 1 in total, or for NONE)."""


class FaultPlan(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which devices misbehave how: shares of the fleet, a seed, and per-device overrides."""

    shares: dict[FaultProfile, float] = msgspec.field(default_factory=dict)
    seed: int = 0
    overrides: dict[str, FaultProfile] = msgspec.field(default_factory=dict)

    def assign(self, macs: Iterable[str]) -> dict[str, FaultProfile]:
        """The profile of every device in `macs`."""
        return assign_faults(macs, self.shares, self.seed, overrides=self.overrides)


def assign_faults(
    macs: Iterable[str],
    shares: Mapping[FaultProfile, float],
    seed: int,
    *,
    overrides: Mapping[str, FaultProfile] | None = None,
) -> dict[str, FaultProfile]:
    """Give each MAC a profile: overrides first, then `shares` of the remaining devices.

    Counts are the shares rounded by largest remainder (each within one device of its exact
    share); which devices get them is a shuffle seeded by `seed`, independent of input order.
    Devices left over get NONE.
    """
    fleet = list(dict.fromkeys(macs))
    overrides = overrides or {}
    _check(shares)
    pool = sorted(set(fleet) - overrides.keys())
    rng = random.Random(seed)  # noqa: S311 - reproducible simulation, not secrecy
    rng.shuffle(pool)
    assigned: dict[str, FaultProfile] = {}
    start = 0
    for profile, count in _counts(shares, len(pool)).items():
        assigned.update((mac, profile) for mac in pool[start : start + count])
        start += count
    assigned.update((mac, FaultProfile.NONE) for mac in pool[start:])
    assigned.update((mac, overrides[mac]) for mac in fleet if mac in overrides)
    return {mac: assigned[mac] for mac in fleet}


def _check(shares: Mapping[FaultProfile, float]) -> None:
    if FaultProfile.NONE in shares:
        raise FaultPlanError("NONE takes whatever the other shares leave; do not give it one")
    if any(not 0.0 <= share <= 1.0 for share in shares.values()):
        raise FaultPlanError(f"every share must be between 0 and 1, got {dict(shares)}")
    if math.fsum(shares.values()) > 1.0 + 1e-9:
        raise FaultPlanError(f"shares add up to more than 1: {math.fsum(shares.values()):.3f}")


def _counts(shares: Mapping[FaultProfile, float], size: int) -> dict[FaultProfile, int]:
    # Largest remainder: floors first, then one more for the biggest fractions until the
    # rounded total is reached; ties go to the profile listed first in the enum.
    ordered = [p for p in FaultProfile if shares.get(p, 0.0) > 0.0]
    exact = {p: shares[p] * size for p in ordered}
    counts = {p: math.floor(exact[p]) for p in ordered}
    spare = min(size, round(math.fsum(exact.values()))) - sum(counts.values())
    by_fraction = sorted(ordered, key=lambda p: (counts[p] - exact[p], ordered.index(p)))
    for profile in by_fraction[: max(spare, 0)]:
        counts[profile] += 1
    return counts
