"""The suite's plot: each target against its limit, and the engine's cost by fleet size."""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.figure import Figure

from bench.report import SuiteReport
from bench.targets import Status, Target, ratio

COLOURS = {
    Status.PASS: "tab:green",
    Status.MISS: "tab:red",
    Status.INVALID: "tab:gray",
    Status.NOT_RUN: "lightgray",
}
FLOOR, CEILING = 0.01, 100.0
"""The ratio axis (log scale): a zero (no missed events) sits on the floor, anything past
the ceiling on it."""


def _bar(target: Target) -> tuple[float, str]:
    """Where the target's bar ends on the ratio axis, and its label."""
    value = ratio(target)
    if target.status in (Status.INVALID, Status.NOT_RUN) or value is None:
        return FLOOR, str(target.status)
    shown = f"{target.measured:.3g} {target.unit} ({target.comparison} {target.target:g})"
    if math.isinf(value) or value > CEILING:
        return CEILING, shown
    return max(value, FLOOR), shown


def plot(report: SuiteReport, path: Path) -> Path:
    """Draw `report` into `path` (PNG); return the path."""
    figure = Figure(figsize=(13, 9), layout="constrained")
    targets_axis, engine_axis = figure.subplots(2, 1, height_ratios=(3, 2))

    names = [t.name for t in report.targets]
    bars = [_bar(t) for t in report.targets]
    positions = range(len(names))
    targets_axis.barh(
        positions,
        [end - FLOOR for end, _ in bars],
        left=FLOOR,
        color=[COLOURS[t.status] for t in report.targets],
    )
    for y, (end, label) in zip(positions, bars, strict=True):
        targets_axis.text(end * 1.08, y, label, va="center", fontsize=8)
    targets_axis.axvline(1.0, color="black", linewidth=1)
    targets_axis.set_xscale("log")
    targets_axis.set_xlim(FLOOR, CEILING * 10)
    targets_axis.set_yticks(list(positions), names, fontsize=8)
    targets_axis.invert_yaxis()
    targets_axis.set_xlabel("measured vs target (1 = the limit; left of it meets the target)")
    targets_axis.set_title(
        f"targets ({report.created:%Y-%m-%d %H:%M} UTC, {report.machine.cpus} CPUs"
        + (", smoke" if report.options.smoke else "")
        + (", profiled" if report.options.profile else "")
        + ")"
    )

    runs = [
        r for r in (report.engine.runs if report.engine else []) if r.scenario == "zero-latency"
    ]
    runs.sort(key=lambda r: r.devices)
    sizes = [r.devices for r in runs]
    engine_axis.set_title("engine, zero latency: wall time and orchestrator CPU per device")
    engine_axis.set_xlabel("devices")
    if not runs:
        engine_axis.text(
            0.5, 0.5, "no zero-latency run", ha="center", transform=engine_axis.transAxes
        )
        figure.savefig(path, dpi=100)
        return path
    wall = [r.wall_s if r.wall_s is not None else math.nan for r in runs]
    cpu = [r.cpu_ms_per_device if r.cpu_ms_per_device is not None else math.nan for r in runs]
    engine_axis.plot(sizes, wall, "o-", color="tab:blue", label="wall s")
    engine_axis.set_ylabel("wall s (provision-all to last verified)", color="tab:blue")
    engine_axis.axhline(15.0, color="tab:blue", linestyle=":", linewidth=1)
    cpu_axis = engine_axis.twinx()
    cpu_axis.plot(sizes, cpu, "s--", color="tab:orange", label="CPU ms/device")
    cpu_axis.set_ylabel("orchestrator CPU ms per device", color="tab:orange")
    cpu_axis.axhline(3.0, color="tab:orange", linestyle=":", linewidth=1)
    engine_axis.set_xticks(sizes)
    engine_axis.set_ylim(bottom=0)
    cpu_axis.set_ylim(bottom=0)
    for r in runs:
        if not r.valid:
            engine_axis.annotate("INVALID", (r.devices, 0), color="tab:gray", ha="center")
    figure.savefig(path, dpi=100)
    return path
