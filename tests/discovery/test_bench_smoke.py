"""The discovery benchmark runs end to end on a tiny fleet (its times are not judged here)."""

from __future__ import annotations

import pytest

from bench.discovery import measure

pytestmark = pytest.mark.netns


@pytest.mark.parametrize("source", ["station", "lease"])
async def test_the_benchmark_measures_every_device(source: str) -> None:
    run = await measure(3, source)
    assert (run.devices, run.source, run.found) == (3, source, 3)
    assert run.first_s is not None
    assert run.last_s is not None
    assert 0 < run.first_s <= run.last_s
