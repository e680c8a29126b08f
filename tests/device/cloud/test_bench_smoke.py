"""`make test` checks that the registration benchmark runs (on three devices)."""

from __future__ import annotations

from datetime import UTC, datetime

from bench.cloud import Report, measure, table


async def test_the_cloud_benchmark_runs_on_a_tiny_fleet() -> None:
    run = await measure(3)
    assert run.invalid is None
    assert run.registered == 3
    assert 0 < run.p50_s <= run.max_s <= run.wall_s * 1.5
    report = Report(started_at=datetime.now(UTC), python="3", machine="x", runs=[run])
    assert "registered" in table(report)
