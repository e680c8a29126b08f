"""The load run's clients, in a process of their own: `python -m bench.load_client`.

The fleet's devices run in the bench's process, whose event loop is busy: clients there would
measure that loop's lag, not the orchestrator. So the event-stream subscribers and the pollers
run here. The configuration (with the API key) comes on stdin as one JSON object; this process
writes `ready` on stdout once every subscriber holds its stream, then, once the batch settled
(every subscriber saw a `session.status` with every device verified or failed) or the budget
ran out, one JSON line: the `Result`.

Subscribers speak HTTP/1.1 over plain asyncio streams (lighter than an HTTP client library:
twenty of them read thousands of frames a second). A frame's delivery latency is this
process's wall clock when its `data:` line was read minus the event's own `timestamp` (the
orchestrator's wall clock when it published the event, microsecond precision; the same host).
Every live frame's `id:` is the event's sequence number in the log, and a subscriber of one
session receives every event from the one it subscribed after: a gap in the ids is a missed
event, and a stream that ends before the batch settled was cut off.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import httpx
import msgspec

from bench.latency import Latency, summarize

C = TypeVar("C", bound=msgspec.Struct)

API = "/api/v1/provisioning"
CONNECT_S = 30.0


class Config(msgspec.Struct, frozen=True, kw_only=True):
    """What the parent asks for."""

    host: str
    port: int
    api_key: str
    session_id: str
    devices: int
    subscribers: int
    poll_interval_s: float
    budget_s: float


class SubscriberResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one subscriber saw."""

    live_events: int
    missed: int
    """Gaps in the sequence numbers, plus what came after the stream ended early."""
    cut_off: bool
    settled: bool
    last_seq: int | None


class Result(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the clients measured."""

    session_read: Latency
    """GET /batch/{id}?include_devices=true."""
    devices_list: Latency
    """GET /batch/{id}/devices."""
    request_errors: int
    sse_latency: Latency
    """Every live frame of every subscriber."""
    sse_events: int
    """Live events the most complete subscriber saw."""
    sse_span_s: float | None
    """From the first to the last of those events (their own timestamps)."""
    sse_rate_per_s: float | None
    subscribers: list[SubscriberResult]
    cpu_s: float
    """This process's CPU: on a small machine the clients compete with the orchestrator."""
    error: str | None = None


class _Head(msgspec.Struct, frozen=True):
    """The part of a frame a subscriber reads (the rest is skipped by the decoder)."""

    type: str
    timestamp: datetime
    payload: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"null"))


class _Counts(msgspec.Struct, frozen=True):
    verified_count: int
    failed_count: int


class _Status(msgspec.Struct, frozen=True):
    session: _Counts


_HEAD = msgspec.json.Decoder(_Head)
_STATUS = msgspec.json.Decoder(_Status)


@dataclass(slots=True)
class Subscriber:
    """One subscriber's running account."""

    latencies: list[float] = field(default_factory=list)
    first_ts: float | None = None
    last_ts: float | None = None
    live: int = 0
    gaps: int = 0
    head: int | None = None
    expected: int | None = None
    last_seq: int | None = None
    settled: bool = False
    ended: bool = False

    def frame(self, seq: int, data: bytes, received: float, devices: int) -> None:
        """Take one frame's id and data."""
        head = _HEAD.decode(data)
        if self.head is None:
            # The first frame (connection.established) carries the head it subscribed after;
            # the snapshot frames that follow carry it too.
            self.head, self.expected = seq, seq + 1
            return
        if head.type == "connection.heartbeat" or seq <= self.head:
            return
        expected = seq if self.expected is None else self.expected
        if seq > expected:
            self.gaps += seq - expected
        self.expected = max(expected, seq + 1)
        self.live += 1
        self.last_seq = seq
        stamp = head.timestamp.timestamp()
        self.latencies.append(received - stamp)
        self.first_ts = stamp if self.first_ts is None else self.first_ts
        self.last_ts = stamp
        if head.type == "session.status":
            counts = _STATUS.decode(head.payload).session
            self.settled = counts.verified_count + counts.failed_count >= devices


async def body_lines(reader: asyncio.StreamReader, *, chunked: bool) -> AsyncIterator[bytes]:
    """The body's lines, without their line ends; de-chunked when `chunked`."""
    if not chunked:
        while line := await reader.readline():
            yield line.rstrip(b"\r\n")
        return
    pending = b""
    while True:
        size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return
        pending += await reader.readexactly(size)
        await reader.readexactly(2)  # the chunk's CRLF
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line.rstrip(b"\r")


async def _response_head(reader: asyncio.StreamReader) -> bool:
    """Read a 200 answer's status line and headers; whether its body is chunked."""
    status = await reader.readline()
    if b" 200 " not in status:
        raise RuntimeError(f"the event stream answered {status.decode().strip()}")
    chunked = False
    while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = header.decode("latin-1").partition(":")
        if name.strip().lower() == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    return chunked


async def open_event_stream(
    host: str, port: int, api_key: str, session_id: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
    """GET the session's event stream over a raw connection (a client library would add its
    own latency to every frame); the reader past the headers, its writer, and whether the
    body is chunked. The caller closes the writer."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        request = (
            f"GET {API}/batch/events?session_id={session_id} HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\nX-API-Key: {api_key}\r\n"
            "Accept: text/event-stream\r\nConnection: close\r\n\r\n"
        )
        writer.write(request.encode())
        await writer.drain()
        chunked = await _response_head(reader)
    except BaseException:
        writer.close()
        raise
    return reader, writer, chunked


async def subscribe(
    config: Config, subscriber: Subscriber, connected: asyncio.Event, count: list[int]
) -> None:
    """Read the session's stream into `subscriber` until the batch settled or it ended."""
    reader, writer, chunked = await open_event_stream(
        config.host, config.port, config.api_key, config.session_id
    )
    try:
        seq = 0
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            async for line in body_lines(reader, chunked=chunked):
                if line.startswith(b"id:"):
                    seq = int(line[3:])
                elif line.startswith(b"data:"):
                    first = subscriber.head is None
                    subscriber.frame(seq, line[5:], time.time(), config.devices)
                    if first:
                        count[0] += 1
                        if count[0] == config.subscribers:
                            connected.set()
                    if subscriber.settled:
                        return
        # The stream ended (or broke) before the batch settled: the subscriber was cut off.
        subscriber.ended = True
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def poll(
    client: httpx.AsyncClient,
    path: str,
    params: dict[str, str],
    *,
    interval_s: float,
    samples: list[float],
    errors: list[str],
    stop: asyncio.Event,
) -> None:
    """GET `path` every `interval_s` until `stop`, timing each request to its last byte."""
    while not stop.is_set():
        began = time.perf_counter()
        try:
            response = await client.get(path, params=params)
        except httpx.TransportError as exc:
            errors.append(f"{path}: {exc!r}")
        else:
            if response.status_code == 200:
                samples.append(time.perf_counter() - began)
            else:
                errors.append(f"{path}: {response.status_code}")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval_s):
                await stop.wait()


def result_of(
    subscribers: list[Subscriber],
    reads: list[float],
    lists: list[float],
    errors: list[str],
    error: str | None,
) -> Result:
    """What the subscribers and pollers measured. A subscriber that did not see the batch
    settle missed every event after its last, up to the settling one the others saw."""
    final = max((s.last_seq for s in subscribers if s.settled and s.last_seq), default=None)
    results = []
    for s in subscribers:
        missed = s.gaps
        if final is not None and not s.settled:
            missed += final - (s.last_seq if s.last_seq is not None else (s.head or final))
        results.append(
            SubscriberResult(
                live_events=s.live,
                missed=missed,
                cut_off=s.ended and not s.settled,
                settled=s.settled,
                last_seq=s.last_seq,
            )
        )
    fullest = max(subscribers, key=lambda s: s.live, default=None)
    span = rate = None
    if fullest and fullest.first_ts is not None and fullest.last_ts is not None:
        span = round(fullest.last_ts - fullest.first_ts, 3)
        rate = round((fullest.live - 1) / span, 1) if span > 0 else None
    own = os.times()
    return Result(
        session_read=summarize(reads),
        devices_list=summarize(lists),
        request_errors=len(errors),
        sse_latency=summarize([x for s in subscribers for x in s.latencies]),
        sse_events=fullest.live if fullest else 0,
        sse_span_s=span,
        sse_rate_per_s=rate,
        subscribers=results,
        cpu_s=round(own.user + own.system, 2),
        error=error or (errors[0] if errors else None),
    )


async def run(config: Config) -> Result:
    """Subscribe, say `ready`, poll until the batch settled; what was measured."""
    subscribers = [Subscriber() for _ in range(config.subscribers)]
    reads: list[float] = []
    lists: list[float] = []
    errors: list[str] = []
    connected, stop = asyncio.Event(), asyncio.Event()
    error = None
    base = f"http://{config.host}:{config.port}"
    path = f"{API}/batch/{config.session_id}"
    try:
        async with (
            asyncio.timeout(config.budget_s),
            httpx.AsyncClient(
                base_url=base,
                headers={"X-API-Key": config.api_key},
                trust_env=False,
                timeout=30.0,
            ) as client,
            asyncio.TaskGroup() as group,
        ):
            count = [0]
            streams = [
                group.create_task(subscribe(config, s, connected, count)) for s in subscribers
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
            interval = config.poll_interval_s
            for url, params, samples in (
                (path, {"include_devices": "true"}, reads),
                (f"{path}/devices", {}, lists),
            ):
                group.create_task(
                    poll(
                        client,
                        url,
                        params,
                        interval_s=interval,
                        samples=samples,
                        errors=errors,
                        stop=stop,
                    )
                )
            await asyncio.wait(streams)
            stop.set()
    except TimeoutError:
        error = f"the batch did not settle within {config.budget_s:.0f} s"
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which judges the run
        error = describe(exc)
    return result_of(subscribers, reads, lists, errors, error)


def describe(exc: BaseException) -> str:
    """An exception in one line; a group by what it holds."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(inner) for inner in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


def serve_once(
    config_type: type[C], work: Callable[[C], Coroutine[Any, Any, msgspec.Struct]]
) -> int:
    """A client process's life: its configuration from stdin (one JSON line), `work` run
    with it, the result on stdout (one JSON line)."""
    config = msgspec.json.decode(sys.stdin.buffer.readline(), type=config_type)
    result: msgspec.Struct = asyncio.run(work(config))
    sys.stdout.write(msgspec.json.encode(result).decode() + "\n")
    sys.stdout.flush()
    return 0


def main() -> int:
    """Read the configuration from stdin, run, write the result on stdout."""
    return serve_once(Config, run)


if __name__ == "__main__":
    sys.exit(main())
