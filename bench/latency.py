"""Latency samples summarised as percentiles (nearest rank)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec


class Latency(msgspec.Struct, frozen=True, kw_only=True):
    """A sample of latencies: how many, the median, the 99th percentile and the worst."""

    samples: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None


def percentile(values: Sequence[float], p: float) -> float:
    """The `p`th percentile (0 < p <= 100) of `values` by nearest rank: the smallest value
    with at least p % of the sample at or below it. A value that was measured, never an
    interpolation, so a p99 of fewer than 100 samples is the worst one."""
    if not values:
        raise ValueError("no values")
    if not 0 < p <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {p}")
    ordered = sorted(values)
    return ordered[math.ceil(p / 100 * len(ordered)) - 1]


def summarize(seconds: Sequence[float]) -> Latency:
    """Latencies given in seconds, summarised in milliseconds."""
    if not seconds:
        return Latency(samples=0, p50_ms=None, p99_ms=None, max_ms=None)
    return Latency(
        samples=len(seconds),
        p50_ms=round(percentile(seconds, 50) * 1000, 3),
        p99_ms=round(percentile(seconds, 99) * 1000, 3),
        max_ms=round(max(seconds) * 1000, 3),
    )
