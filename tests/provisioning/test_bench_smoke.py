"""The engine benchmark runs end to end on a tiny fleet (its times are not judged here)."""

from __future__ import annotations

from pathlib import Path

import msgspec

from bench.engine import Report, Run, describe, log_errors, run_bench, table
from bench.files import write_report


def assert_sane(run: Run) -> None:
    assert run.valid, run.invalid_because
    assert run.invalid_because == []
    assert (run.discovered, run.verified, run.failed) == (run.devices, run.devices, 0)
    assert run.discovery_s is not None
    assert run.discovery_s >= 0
    assert run.wall_s is not None
    assert run.wall_s > 0
    assert run.cpu_s is not None
    assert run.cpu_s > 0
    assert run.cpu_ms_per_device is not None
    assert run.cpu_ms_per_device > 0
    assert run.peak_rss_mib is not None
    assert run.peak_rss_mib > 0
    assert run.broker_cpu_s is not None
    assert {"detect", "provision", "confirm"} <= set(run.stage_ms)


async def test_the_benchmark_measures_every_scenario(tmp_path: Path) -> None:
    report = await run_bench([3], [3], join_delay_s=0.1, baseline=True)

    zero, delayed, serial = report.runs
    for run in report.runs:
        assert_sane(run)
    assert (zero.scenario, zero.devices, zero.wave, zero.ideal_s) == ("zero-latency", 3, 8, None)
    assert (delayed.scenario, delayed.wave, delayed.ideal_s) == ("join-delay", 8, 0.1)
    assert (serial.scenario, serial.wave, serial.ideal_s) == ("serial", 1, 0.3)
    # Each device holds its credentials for the join delay: no batch beats its ideal.
    assert delayed.wall_s is not None
    assert delayed.wall_s >= 0.1
    assert delayed.vs_ideal is not None
    assert delayed.vs_ideal >= 1
    assert delayed.serial_s == serial.wall_s
    assert delayed.speedup is not None
    assert delayed.speedup > 1

    path = write_report(report, tmp_path)
    assert path.name.startswith("engine-")
    assert msgspec.json.decode(path.read_bytes(), type=Report) == report
    assert "ms/dev" in table(report)


def test_the_orchestrators_errors_are_its_error_lines_and_exceptions(tmp_path: Path) -> None:
    log = tmp_path / "orchestrator.log"
    log.write_text(
        "2026-01-01 00:00:00,000 INFO x [cid=-] fine\n"
        "2026-01-01 00:00:00,001 ERROR litestar [cid=-] Uncaught exception\n"
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\n'
        "    raise KeyError(1)\n"
        "KeyError: 1\n"
        "2026-01-01 00:00:00,002 INFO x [cid=-] fine again\n",
        encoding="utf-8",
    )
    assert log_errors(log) == [
        "2026-01-01 00:00:00,001 ERROR litestar [cid=-] Uncaught exception",
        "KeyError: 1",
    ]


def test_a_crash_is_described_in_one_line_with_its_notes() -> None:
    inner = RuntimeError("batch/start: 500")
    inner.add_note("orchestrator: KeyError: 1")
    group = ExceptionGroup("unhandled errors in a TaskGroup", [inner, ValueError("x")])
    assert describe(group) == (
        "RuntimeError: batch/start: 500 | orchestrator: KeyError: 1; ValueError: x"
    )
