"""Text for the terminal: device tables, progress bars, and the live screen of `batch follow`
(plain ANSI on a terminal; one line per change anywhere else, so logs and CI read well)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import TextIO

from orchestrator.client.watch import BatchWatch, DeviceRow
from orchestrator.domain.candidate import CandidateState, CandidateView

_BAR_WIDTH = 30
_HOME, _CLEAR_LINE, _CLEAR_BELOW, _CLEAR_ALL = "\x1b[H", "\x1b[K", "\x1b[J", "\x1b[2J"
_RESET = "\x1b[0m"
_STATES = frozenset(state.value for state in CandidateState)
_COLOURS = {
    CandidateState.VERIFIED: "\x1b[32m",  # green
    CandidateState.FAILED: "\x1b[31m",  # red
    CandidateState.PROVISIONING: "\x1b[33m",  # yellow: work under way
    CandidateState.PROVISIONED: "\x1b[33m",
    CandidateState.VERIFYING: "\x1b[33m",
}


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell; the last column is never padded."""
    body = [list(row) for row in rows]
    widths = [max(len(r[i]) for r in [list(header), *body]) for i in range(len(header) - 1)]
    return [
        "  ".join(
            [*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]
        ).rstrip()
        for row in [list(header), *body]
    ]


def progress_bar(done: int, total: int, width: int = _BAR_WIDTH) -> str:
    """`[#########.....................] 3/10`."""
    filled = width * done // total if total else 0
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


def _yes(value: bool) -> str:  # noqa: FBT001 - a formatter of one boolean
    return "yes" if value else "no"


def candidate_table(devices: Iterable[CandidateView]) -> list[str]:
    """`batch status`: the devices as GET /batch/{id} lists them."""
    return table(
        ("MAC", "STATE", "RSSI", "FIRMWARE", "ALLOWLIST", "RETRIES", "REASON"),
        (
            (
                d.mac,
                d.state,
                str(d.rssi),
                d.firmware_version,
                _yes(d.in_allowlist),
                str(d.retry_count),
                d.error_message if d.state is CandidateState.FAILED and d.error_message else "",
            )
            for d in devices
        ),
    )


def watch_table(devices: Collection[DeviceRow]) -> list[str]:
    """`batch follow`: the devices as the event stream tells them."""
    if not devices:
        return ["(no devices yet)"]
    return table(
        ("MAC", "STATE", "RSSI", "FIRMWARE", "ALLOWLIST", "REASON"),
        (
            (d.mac, d.state, str(d.rssi), d.firmware_version, _yes(d.in_allowlist), d.error or "")
            for d in devices
        ),
    )


def watch_header(watch: BatchWatch) -> list[str]:
    """The session line and the progress bar of finished devices."""
    session = watch.session
    if session is None:
        return [f"session {watch.session_id}: waiting for the appliance"]
    total = len(watch.devices)
    verified = sum(1 for d in watch.devices.values() if d.state is CandidateState.VERIFIED)
    return [
        f"session {session.id} ({session.state}), target SSID {session.target_ssid!r}",
        f"{progress_bar(watch.finished_count, total)} finished: "
        f"{verified} verified, {len(watch.failed)} failed",
    ]


def watch_summary(watch: BatchWatch) -> list[str]:
    """The closing words of `batch follow`: the outcome, and every failure with its reason."""
    failed = watch.failed
    total = len(watch.devices)
    verified = sum(1 for d in watch.devices.values() if d.state is CandidateState.VERIFIED)
    outcome = "done" if watch.done else "stopped before the end"
    if failed:
        headline = f"{outcome}: {len(failed)} of {total} devices FAILED, {verified} verified"
    else:
        headline = f"{outcome}: {verified} of {total} devices verified, none failed"
    return [headline, *(f"  {d.mac}: {d.error or 'no reason given'}" for d in failed)]


class Screen:
    """Redraws the whole view in place on a terminal (cursor home, clear, draw)."""

    def __init__(self, out: TextIO, *, width: int = 120) -> None:
        self._out = out
        self._width = width
        self._first = True

    def draw(self, watch: BatchWatch, status: str = "") -> None:
        """Paint the header, the device table and a status line."""
        # Cut to the terminal's width: a wrapped line would push the view off the screen.
        rows = [line[: self._width] for line in watch_table(watch.devices.values())]
        lines = [*watch_header(watch), "", *_coloured(rows)]
        if status:
            lines += ["", status[: self._width]]
        prefix = _HOME + (_CLEAR_ALL if self._first else "")
        self._first = False
        self._out.write(prefix + "".join(line + _CLEAR_LINE + "\n" for line in lines))
        self._out.write(_CLEAR_BELOW)
        self._out.flush()


def _coloured(lines: list[str]) -> list[str]:
    """The table with each state cell in its colour (the header line is left plain)."""
    out = lines[:1]
    for line in lines[1:]:
        cells = line.split()
        state = cells[1] if len(cells) > 1 and cells[1] in _STATES else None
        colour = _COLOURS.get(CandidateState(state)) if state else None
        if colour:
            line = line.replace(f" {state} ", f" {colour}{state}{_RESET} ", 1)  # noqa: PLW2901
        out.append(line)
    return out
