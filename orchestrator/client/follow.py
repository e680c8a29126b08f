"""`batch follow`: a session watched live from the event stream, drawn as a table with a
progress bar; redrawn in place on a terminal, one line per change anywhere else (pipes,
logs, CI). The rule for when it stops is in `watch.py`."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TextIO

from orchestrator.client import render
from orchestrator.client.api import ApiClient
from orchestrator.client.sse import StreamEvent, follow_events
from orchestrator.client.watch import BatchWatch

_PAINT_INTERVAL_S = 0.1
"""A terminal is redrawn at most this often: a snapshot of a big batch is thousands of events."""
_DEFAULT_WIDTH = 120


@dataclass(frozen=True)
class Followed:
    """How following ended: the session as last seen, and whether time ran out first."""

    watch: BatchWatch
    timed_out: bool


class _Lines:
    """One line per change: for pipes, logs and CI."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self._out = out
        self._err = err
        self._finished = 0

    def changed(self, watch: BatchWatch, event: StreamEvent, changes: list[str]) -> None:
        stamp = f"{event.timestamp.astimezone():%H:%M:%S}"  # the operator's local time
        for change in changes:
            self._out.write(f"{stamp} {change}\n")
        if changes and watch.finished_count != self._finished:
            self._finished = watch.finished_count
            self._out.write(f"{stamp} progress {render.watch_header(watch)[-1]}\n")
        self._out.flush()

    async def reconnecting(self, reason: str) -> None:
        self._err.write(f"orchestrator: reconnecting to the event stream ({reason})\n")

    def finish(self, watch: BatchWatch) -> None:
        lines = ["", *render.watch_header(watch), ""]
        lines += [*render.watch_table(watch.devices.values()), "", *render.watch_summary(watch)]
        self._out.write("".join(f"{line}\n" for line in lines))
        self._out.flush()


class _Live:
    """The whole view redrawn in place on a terminal, at most every `_PAINT_INTERVAL_S`."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._screen = render.Screen(out, width=_width_of(out))
        self._dirty = asyncio.Event()
        self._status = ""
        self._watch: BatchWatch | None = None

    def changed(self, watch: BatchWatch, event: StreamEvent, changes: list[str]) -> None:
        del event
        self._watch = watch
        if changes:
            self._dirty.set()

    async def reconnecting(self, reason: str) -> None:
        self._status = f"reconnecting: {reason}"
        self._dirty.set()

    async def paint(self) -> None:
        """Redraw whenever something changed, no more often than the interval."""
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            if self._watch is not None:
                self._screen.draw(self._watch, self._status)
                self._status = ""
            await asyncio.sleep(_PAINT_INTERVAL_S)

    def finish(self, watch: BatchWatch) -> None:
        self._screen.draw(watch)
        self._out.write("".join(f"{line}\n" for line in ["", *render.watch_summary(watch)]))
        self._out.flush()


def _width_of(out: TextIO) -> int:
    try:
        return os.get_terminal_size(out.fileno()).columns
    except (OSError, ValueError):
        return _DEFAULT_WIDTH


@contextlib.asynccontextmanager
async def _painting(view: _Lines | _Live) -> AsyncIterator[None]:
    """Runs the live view's painter for the life of the block."""
    if not isinstance(view, _Live):
        yield
        return
    async with asyncio.TaskGroup() as group:
        painter = group.create_task(view.paint())
        try:
            yield
        finally:
            painter.cancel()


async def follow_session(
    client: ApiClient, session_id: str, out: TextIO, *, err: TextIO, timeout_s: float | None
) -> Followed:
    """Show `session_id` on `out` until the watch is done (or `timeout_s` passes), then the
    final table and a summary naming every failed device and its reason."""
    watch = BatchWatch(session_id)
    view: _Lines | _Live = _Live(out) if out.isatty() else _Lines(out, err)
    deadline = asyncio.timeout(timeout_s) if timeout_s else contextlib.nullcontext()
    timed_out = False
    try:
        async with (
            deadline,
            _painting(view),
            contextlib.aclosing(
                follow_events(client, session_id, on_reconnect=view.reconnecting)
            ) as events,
        ):
            async for event in events:
                view.changed(watch, event, watch.apply(event))
                if watch.done:
                    break
    except TimeoutError:
        timed_out = True
    view.finish(watch)
    return Followed(watch=watch, timed_out=timed_out)
