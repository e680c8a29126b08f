"""The issue's performance targets and the verdict on a measurement (pure)."""

from __future__ import annotations

import enum

import msgspec


class Status(enum.StrEnum):
    """A target's verdict."""

    PASS = "PASS"  # noqa: S105 - a verdict, not a password
    MISS = "MISS"
    """Measured on a valid run, and outside the target."""
    INVALID = "INVALID"
    """The run that would measure it does not count (a fault, dropped packets, a crash)."""
    NOT_RUN = "NOT RUN"
    """Nothing measured it (its section was not run, or could not run here)."""


class Comparison(enum.StrEnum):
    """How a measurement must relate to its target."""

    AT_MOST = "<="
    AT_LEAST = ">="


class TargetSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A target as the issue sets it."""

    name: str
    unit: str
    limit: float
    comparison: Comparison
    devices: int | None = None
    """The fleet size the issue sets it for (None: not about a fleet)."""


class Target(msgspec.Struct, frozen=True, kw_only=True):
    """A target and its verdict in this run."""

    name: str
    measured: float | None
    unit: str
    target: float
    comparison: Comparison
    status: Status
    devices: int | None = None
    """The fleet size it was measured on."""
    note: str = ""
    """Why it is INVALID or NOT RUN; or that it was measured on another fleet size."""


MB = 1_000_000
MIB = 1 << 20

CPU_PER_DEVICE = TargetSpec(
    name="orchestrator CPU per device (zero latency)", unit="ms", limit=3.0,
    comparison=Comparison.AT_MOST, devices=1000,
)  # fmt: skip
WALL_ZERO_LATENCY = TargetSpec(
    name="wall time, discovered to verified (zero latency)", unit="s", limit=15.0,
    comparison=Comparison.AT_MOST, devices=1000,
)  # fmt: skip
VS_IDEAL = TargetSpec(
    name="2 s join delay, waves of 8: wall / ideal schedule", unit="x", limit=1.1,
    comparison=Comparison.AT_MOST, devices=100,
)  # fmt: skip
SPEEDUP = TargetSpec(
    name="2 s join delay, waves of 8: speed-up over one at a time", unit="x", limit=7.0,
    comparison=Comparison.AT_LEAST, devices=100,
)  # fmt: skip
SESSION_READ_P99 = TargetSpec(
    name="GET /batch/{id}?include_devices=true p99 during a batch", unit="ms", limit=25.0,
    comparison=Comparison.AT_MOST, devices=1000,
)  # fmt: skip
SSE_P99 = TargetSpec(
    name="SSE delivery latency p99 (20 subscribers)", unit="ms", limit=50.0,
    comparison=Comparison.AT_MOST,
)  # fmt: skip
"""At 500 events/s (bench.sse), not about a fleet."""
SSE_MISSED = TargetSpec(
    name="SSE events missed by healthy subscribers", unit="events", limit=0,
    comparison=Comparison.AT_MOST,
)  # fmt: skip
SSE_RATE_PER_S = 500.0
SSE_SUBSCRIBERS = 20
"""The load the two SSE targets are set for."""
RSS_STARTUP = TargetSpec(
    name="RSS after start-up", unit="MB", limit=80.0, comparison=Comparison.AT_MOST
)
RSS_LOADED = TargetSpec(
    name="RSS with 1000 candidates, every discovery source on", unit="MB", limit=120.0,
    comparison=Comparison.AT_MOST, devices=1000,
)  # fmt: skip
STARTUP = TargetSpec(
    name="start-up to a healthy /api/v1/health (slowest start)", unit="s", limit=1.5,
    comparison=Comparison.AT_MOST,
)  # fmt: skip

ALL = (
    CPU_PER_DEVICE, WALL_ZERO_LATENCY, VS_IDEAL, SPEEDUP, SESSION_READ_P99, SSE_P99,
    SSE_MISSED, RSS_STARTUP, RSS_LOADED, STARTUP,
)  # fmt: skip
"""Every target, in the order the summary shows them."""


def meets(measured: float, limit: float, comparison: Comparison) -> bool:
    """Whether `measured` is within `limit`."""
    if comparison is Comparison.AT_MOST:
        return measured <= limit
    return measured >= limit


def judge(
    spec: TargetSpec,
    measured: float | None,
    *,
    ran: bool,
    valid: bool,
    devices: int | None = None,
    why: str = "",
) -> Target:
    """The verdict on `spec`: NOT RUN when nothing measured it, INVALID when the run does not
    count (or gave no number), else PASS or MISS. `why` says why it did not run or count."""
    note = why
    if ran and valid and spec.devices not in (None, devices) and devices is not None:
        note = f"measured on {devices} devices; the target is set for {spec.devices}"
    if not ran:
        status = Status.NOT_RUN
    elif not valid or measured is None:
        status = Status.INVALID
        note = why or "the run gave no measurement"
    else:
        status = Status.PASS if meets(measured, spec.limit, spec.comparison) else Status.MISS
    return Target(
        name=spec.name,
        measured=measured,
        unit=spec.unit,
        target=spec.limit,
        comparison=spec.comparison,
        status=status,
        devices=devices,
        note=note,
    )


def ratio(target: Target) -> float | None:
    """How far a measurement is from its target, oriented so that at most 1 meets it:
    measured / target for an upper bound, target / measured for a lower one; None when
    there is no measurement. A zero target is met by zero (ratio 0) and missed by anything
    else (infinite)."""
    measured = target.measured
    if measured is None:
        return None
    if target.comparison is Comparison.AT_MOST:
        if target.target == 0:
            return 0.0 if measured <= 0 else float("inf")
        return measured / target.target
    if measured <= 0:
        return float("inf")
    return target.target / measured


def mb(mib: float) -> float:
    """Mebibytes (what /proc reports, in KiB) in megabytes (10^6 bytes, the targets' unit)."""
    return round(mib * MIB / MB, 1)
