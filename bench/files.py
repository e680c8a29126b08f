"""Where a benchmark's report goes: `<directory>/<benchmark>-<UTC time>.json`."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Generic, Protocol, TypeVar

import msgspec

R = TypeVar("R")


class Dated(Protocol):
    """A report: msgspec Struct naming its benchmark and when it was made."""

    @property
    def benchmark(self) -> str:
        """The benchmark's name, the file's stem."""
        ...

    @property
    def created(self) -> datetime:
        """When the report was made (UTC)."""
        ...


def write_report(report: Dated, directory: Path) -> Path:
    """Write `report` as indented JSON into `directory` (created if need be); its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{report.benchmark}-{report.created:%Y%m%dT%H%M%SZ}.json"
    path.write_bytes(msgspec.json.format(msgspec.json.encode(report)))
    return path


class RunsReport(msgspec.Struct, Generic[R], frozen=True, kw_only=True):
    """Every run of one invocation of a benchmark, with the machine it ran on."""

    benchmark: str
    created: datetime
    kernel: str
    cpus: int
    python: str
    runs: list[R]


def runs_report(benchmark: str, runs: list[R]) -> RunsReport[R]:
    """`runs` of `benchmark`, dated now, on this machine."""
    return RunsReport(
        benchmark=benchmark,
        created=datetime.now(UTC),
        kernel=platform.release(),
        cpus=os.cpu_count() or 0,
        python=platform.python_version(),
        runs=runs,
    )
