"""A per-device circuit breaker as pure data: closed, open after too many consecutive
failures, half-open (one trial request) once the cool-down has passed.

Time is a float of monotonic seconds handed in by the caller.
"""

from __future__ import annotations

import msgspec


class Circuit(msgspec.Struct, frozen=True, kw_only=True):
    """One device's breaker. A fresh one is closed."""

    failures: int = 0
    """Consecutive failures since the last success."""
    open_until: float | None = None
    """While `now < open_until`, requests fail at once."""


class BreakerRules(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """When a breaker opens and for how long."""

    failures_to_open: int = 5
    open_s: float = 30.0


def allows(circuit: Circuit, now: float) -> bool:
    """Whether a request may go out now (closed, or half-open after the cool-down)."""
    return circuit.open_until is None or now >= circuit.open_until


def after_success(circuit: Circuit) -> Circuit:
    """A success closes the breaker."""
    return Circuit() if circuit.failures or circuit.open_until is not None else circuit


def after_failure(circuit: Circuit, now: float, rules: BreakerRules) -> Circuit:
    """Count a failure; open (again) at the threshold, or at once when half-open."""
    failures = circuit.failures + 1
    half_open = circuit.open_until is not None
    if half_open or failures >= rules.failures_to_open:
        return Circuit(failures=failures, open_until=now + rules.open_s)
    return Circuit(failures=failures)
