"""The SSE run's subscribers, in a process of their own: `python -m bench.sse_client`.

The bench process serves the appliance and publishes its events on one event loop: subscribers
there would measure that loop's lag as delivery latency. So they run here. The configuration
(with the API key) comes on stdin as one JSON line (`Config`); this process writes `ready` on
stdout once every subscriber holds its stream (its `connection.established` frame read). The
parent then publishes, and writes one JSON line on stdin, `End`: the sequence number of the
last event it published. Each subscriber reads until it saw that one, its stream ended, or
`grace_s` passed; then this process writes one JSON line, the `Result`, and exits.

Frames are read and accounted as `bench.load_client` does (`Subscriber`): delivery latency is
this process's wall clock when a frame's `data:` line was read minus the event's `timestamp`;
a gap in the live `id:`s is a missed event.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from dataclasses import dataclass, field

import msgspec

from bench.latency import Latency, summarize
from bench.load_client import Subscriber, body_lines, describe, open_event_stream, serve_once

CONNECT_S = 30.0


class Config(msgspec.Struct, frozen=True, kw_only=True):
    """What the parent asks for."""

    host: str
    port: int
    api_key: str
    session_id: str
    subscribers: int
    grace_s: float
    """How long after the end a subscriber may take to see the last event."""
    budget_s: float
    """The whole run, connecting included."""


class End(msgspec.Struct, frozen=True, kw_only=True):
    """What the parent says once it has published everything."""

    first_seq: int | None
    """The sequence number of the first event published (None: nothing was)."""
    last_seq: int | None


class StreamResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one subscriber saw."""

    head: int | None
    """The sequence number it subscribed after."""
    live_events: int
    last_seq: int | None
    missed: int
    """Gaps in the ids after its head, plus everything after its last event up to the end."""
    cut_off: bool
    """Its stream ended before it saw the last event published."""


class Result(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the subscribers measured."""

    latency: Latency
    """Every live frame of every subscriber."""
    delivered: int
    """Live frames, summed over the subscribers."""
    streams: list[StreamResult]
    cpu_s: float
    """This process's CPU: on a small machine it competes with the appliance."""
    error: str | None = None


@dataclass(slots=True)
class Stream:
    """One subscriber's account, and whether it is done."""

    account: Subscriber = field(default_factory=Subscriber)
    ended: bool = False
    """Its stream ended (or broke) on the server's side."""
    done: asyncio.Event = field(default_factory=asyncio.Event)


def reached(account: Subscriber, last_seq: int | None) -> bool:
    """Whether `account` has seen everything up to `last_seq` (None: nothing was published)."""
    if last_seq is None:
        return True
    return account.expected is not None and account.expected > last_seq


def stream_result(account: Subscriber, *, ended: bool, end: End | None) -> StreamResult:
    """One subscriber's outcome. Everything published after its last event (or, with none,
    from the first published) up to the end that it did not see counts as missed."""
    missed = account.gaps
    last = end.last_seq if end else None
    if last is not None and not reached(account, last):
        seen = account.expected - 1 if account.expected is not None else None
        first = end.first_seq if end and end.first_seq is not None else last
        since = seen if seen is not None and seen >= first else first - 1
        missed += last - since
    return StreamResult(
        head=account.head,
        live_events=account.live,
        last_seq=account.last_seq,
        missed=missed,
        cut_off=ended and not reached(account, last),
    )


def result_of(streams: list[Stream], end: End | None, error: str | None) -> Result:
    """What the subscribers measured, once the run is over."""
    own = os.times()
    return Result(
        latency=summarize([x for s in streams for x in s.account.latencies]),
        delivered=sum(s.account.live for s in streams),
        streams=[stream_result(s.account, ended=s.ended, end=end) for s in streams],
        cpu_s=round(own.user + own.system, 2),
        error=error,
    )


async def subscribe(
    config: Config, stream: Stream, connected: asyncio.Event, count: list[int], goal: list[End]
) -> None:
    """Read the session's stream into `stream` until it saw the end, or the stream ended."""
    reader, writer, chunked = await open_event_stream(
        config.host, config.port, config.api_key, config.session_id
    )
    try:
        seq = 0
        account = stream.account
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            async for line in body_lines(reader, chunked=chunked):
                if line.startswith(b"id:"):
                    seq = int(line[3:])
                elif line.startswith(b"data:"):
                    first = account.head is None
                    account.frame(seq, line[5:], time.time(), 0)
                    if first:
                        count[0] += 1
                        if count[0] == config.subscribers:
                            connected.set()
                    if goal and reached(account, goal[0].last_seq):
                        stream.done.set()
                        return
        stream.ended = True
        stream.done.set()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _read_end() -> End:
    # The parent writes the end once it has published everything; an EOF (the parent gave
    # up) decodes as an error, which ends the run.
    line = await asyncio.to_thread(sys.stdin.buffer.readline)
    return msgspec.json.decode(line, type=End)


async def run(config: Config) -> Result:
    """Subscribe, say `ready`, read until the end the parent announces; what was measured."""
    streams = [Stream() for _ in range(config.subscribers)]
    connected = asyncio.Event()
    goal: list[End] = []
    error = None
    try:
        async with asyncio.timeout(config.budget_s), asyncio.TaskGroup() as group:
            count = [0]
            tasks = [
                group.create_task(subscribe(config, s, connected, count, goal)) for s in streams
            ]
            try:
                async with asyncio.timeout(CONNECT_S):
                    await connected.wait()
            except TimeoutError as exc:
                raise RuntimeError(
                    f"{count[0]} of {config.subscribers} streams opened in {CONNECT_S:.0f} s"
                ) from exc
            sys.stdout.write("ready\n")
            sys.stdout.flush()
            goal.append(await _read_end())
            # A subscriber that already saw the last event waits for no more frames.
            for s in streams:
                if reached(s.account, goal[0].last_seq):
                    s.done.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(config.grace_s):
                    for s in streams:
                        await s.done.wait()
            for task in tasks:
                task.cancel()
    except TimeoutError:
        error = f"the run did not end within {config.budget_s:.0f} s"
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which judges the run
        error = describe(exc)
    return result_of(streams, goal[0] if goal else None, error)


def main() -> int:
    """Read the configuration from stdin, run, write the result on stdout."""
    return serve_once(Config, run)


if __name__ == "__main__":
    sys.exit(main())
