"""Following the event stream: a Server-Sent Events parser (WHATWG HTML, "server-sent
events") and a reader that reconnects with Last-Event-ID until told to stop.

After a reconnect the appliance replays what was missed, or (when that is no longer in its
log) starts over with a snapshot; either way every event states where things now are, so a
consumer can apply them as they come.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

import httpx
import msgspec

from orchestrator.client.api import ApiClient, ApplianceUnreachableError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SseFrame:
    """One dispatched message: its id (when the server sent one) and its data."""

    id: str | None
    data: str


@dataclass(slots=True)
class SseParser:
    """Turns the lines of a text/event-stream into frames; feed it every line, blank ones
    included (a blank line dispatches the frame gathered so far)."""

    _data: list[str] = field(default_factory=list)
    _id: str | None = None
    _has_data: bool = False

    def feed(self, line: str) -> SseFrame | None:
        """Take one line (without its line end); a frame when the line completes one."""
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment (keep-alive)
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        match name:
            case "data":
                self._data.append(value)
                self._has_data = True
            case "id" if "\0" not in value:
                self._id = value
            case _:
                pass  # `event` and `retry` mean nothing to us; unknown fields are ignored
        return None

    def _dispatch(self) -> SseFrame | None:
        if not self._has_data:
            return None
        frame = SseFrame(id=self._id, data="\n".join(self._data))
        self._data = []
        self._has_data = False
        return frame


class StreamEvent(msgspec.Struct, frozen=True, kw_only=True):
    """The envelope of one event; the payload is decoded by whoever knows its type."""

    type: str
    timestamp: datetime
    payload: msgspec.Raw = msgspec.Raw(b"null")
    session_id: str | None = None


_DECODER = msgspec.json.Decoder(StreamEvent)


@dataclass(frozen=True, slots=True)
class Reconnect:
    """How hard to try: waits between attempts double from `first_s` up to `max_s`; after
    `give_up_s` without a connection the stream fails."""

    first_s: float = 0.5
    max_s: float = 5.0
    give_up_s: float = 60.0
    idle_s: float = 45.0
    """A stream silent for this long is dead (the appliance sends a heartbeat every 15 s)."""


async def read_frames(response: httpx.Response, idle_s: float) -> AsyncIterator[SseFrame]:
    """The frames of one open stream, until it ends; TimeoutError after `idle_s` of silence."""
    parser = SseParser()
    lines = response.aiter_lines()
    while True:
        async with asyncio.timeout(idle_s):
            line = await anext(lines, None)
        if line is None:
            return
        frame = parser.feed(line)
        if frame is not None:
            yield frame


async def follow_events(
    client: ApiClient,
    session_id: str | None,
    *,
    reconnect: Reconnect | None = None,
    on_reconnect: Callable[[str], Awaitable[None]] | None = None,
) -> AsyncGenerator[StreamEvent, None]:
    """Every event for `session_id` from now on, across reconnects, until the consumer stops.

    Errors the appliance answers (an unknown session, a revoked key) end it at once; losing
    the appliance ends it with ApplianceUnreachableError after `give_up_s` of trying.
    `on_reconnect` hears why each reconnect happens.
    """
    policy = reconnect or Reconnect()
    last_id: str | None = None
    wait_s = policy.first_s
    lost_at: float | None = None
    while True:
        try:
            async with client.event_stream(session_id, last_id, policy.idle_s) as response:
                lost_at, wait_s = None, policy.first_s
                async for frame in read_frames(response, policy.idle_s):
                    last_id = frame.id if frame.id is not None else last_id
                    try:
                        event = _DECODER.decode(frame.data)
                    except msgspec.DecodeError:
                        log.warning("skipped an event that is not an event: %.80s", frame.data)
                        continue
                    yield event
            reason = "the appliance ended the stream"
        except (ApplianceUnreachableError, httpx.TransportError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
        now = time.monotonic()
        lost_at = now if lost_at is None else lost_at
        if now - lost_at >= policy.give_up_s:
            raise ApplianceUnreachableError(
                f"lost the event stream of {client.base_url} for {policy.give_up_s:.0f} s: {reason}"
            )
        if on_reconnect is not None:
            await on_reconnect(reason)
        await asyncio.sleep(wait_s)
        wait_s = min(wait_s * 2, policy.max_s)
