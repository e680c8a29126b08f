"""The test bed benchmark runs end to end on a tiny bed (its times are not judged here)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from bench.files import write_report
from bench.testbed import Report, run_bench, table

pytestmark = pytest.mark.netns


async def test_the_benchmark_writes_a_well_formed_report(tmp_path: Path) -> None:
    report = await run_bench([2])
    path = write_report(report, tmp_path)
    decoded = msgspec.json.decode(path.read_bytes(), type=Report)
    assert decoded == report
    [run] = decoded.runs
    assert run.devices == 2
    assert run.leased == 2
    assert run.setup_s > 0
    assert run.teardown_s > 0
    assert run.leftovers == []
    assert run.valid == (not run.invalid_because)
    assert "setup s" in table(report)
