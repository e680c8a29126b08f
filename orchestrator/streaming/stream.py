"""One client's event stream: a snapshot or a replay first, then live events and heartbeats.

Every frame carries the sequence number of the newest logged event it reflects, so the
browser's Last-Event-ID always names a point in the log to replay from.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import msgspec

from orchestrator.domain.events import ConnectionEstablished, Event, EventType
from orchestrator.streaming.bus import EventBus, StreamEnded, Subscription

log = logging.getLogger(__name__)

_ENCODER = msgspec.json.Encoder()
MAX_REPLAY = 10_000
"""A client further behind than this gets a fresh snapshot instead of a replay."""
CHUNK_FRAMES = 256
"""At most this many frames go out in one write."""

Subscribe = Callable[[], tuple[Subscription, int]]
SnapshotSource = Callable[
    [str | None, Subscribe], Awaitable[tuple[list[Event], tuple[Subscription, int]]]
]
"""Builds the snapshot events of a session (or the current one) and subscribes, atomically."""


@dataclass(frozen=True, slots=True)
class OutFrame:
    """What goes on the wire: `id:` and one JSON `data:` line."""

    id: int
    data: bytes

    def wire(self) -> bytes:
        """The frame as the stream carries it. No `event:` line: the dashboard listens with
        `onmessage`, which never sees named events. The JSON holds no line break (msgspec
        writes it compact), so one `data:` line carries it whole."""
        return b"id: %d\ndata: %b\n\n" % (self.id, self.data)


@dataclass(slots=True)
class EventStream:
    """An opened stream: its first frames are ready, live ones follow from the subscription."""

    bus: EventBus
    subscription: Subscription
    initial: list[OutFrame]
    head: int
    heartbeat_s: float
    clock: Callable[[], datetime]

    async def chunks(self, limit: int = CHUNK_FRAMES) -> AsyncIterator[list[OutFrame]]:
        """The initial frames, then live events, with a heartbeat whenever the line is idle;
        in chunks of up to `limit` frames, each to be written at once.

        A live chunk is the next frame and whatever queued behind it meanwhile: at a few
        events a second every frame goes out alone, as soon as it comes; under load a
        subscriber catches up with one write per chunk rather than one per frame (20
        dashboards at 500 events/s would otherwise take 10 000 writes a second).
        """
        last = self.head
        try:
            for start in range(0, len(self.initial), limit):
                yield self.initial[start : start + limit]
                # A suspension point per chunk: without one, a client that left during a
                # big snapshot goes unnoticed (the server's disconnect watcher never runs)
                # and every remaining frame is written to a dead socket.
                await asyncio.sleep(0)
            while True:
                live = await self.subscription.next(self.heartbeat_s)
                if live is None:
                    heartbeat = Event(
                        type=EventType.CONNECTION_HEARTBEAT, timestamp=self.clock(), payload=None
                    )
                    yield [OutFrame(id=last, data=_ENCODER.encode(heartbeat))]
                    continue
                frames = [live, *self.subscription.ready(limit - 1)]
                last = frames[-1].seq
                yield [OutFrame(id=frame.seq, data=frame.data) for frame in frames]
        except StreamEnded as ended:
            log.info("event stream ended: %s", ended.reason)
        finally:
            self.bus.unsubscribe(self.subscription)


async def open_stream(
    *,
    bus: EventBus,
    snapshot: SnapshotSource,
    session_filter: str | None,
    last_event_id: int | None,
    heartbeat_s: float,
    clock: Callable[[], datetime],
) -> EventStream:
    """Open a stream: replay after `last_event_id` when the log still holds it, else a
    snapshot. Errors (an unknown session) surface here, before any byte is sent."""

    def subscribe() -> tuple[Subscription, int]:
        return bus.subscribe(session_filter)

    established = Event(
        type=EventType.CONNECTION_ESTABLISHED,
        timestamp=clock(),
        payload=ConnectionEstablished(message="connected", session_id=session_filter),
        session_id=session_filter,
    )
    bounds = await bus.log.bounds()
    replayable = (
        last_event_id is not None
        and bounds is not None
        and bounds[0] - 1 <= last_event_id <= bounds[1]
        and bus.head - last_event_id <= MAX_REPLAY
    )
    if replayable and last_event_id is not None:
        subscription, head = subscribe()
        stored = await bus.log.since(last_event_id, limit=head - last_event_id)
        initial = [OutFrame(id=last_event_id, data=_ENCODER.encode(established))]
        initial += [
            OutFrame(id=e.seq, data=e.data)
            for e in stored
            if e.seq <= head and subscription.wants(e.session_id)
        ]
    else:
        events, (subscription, head) = await snapshot(session_filter, subscribe)
        initial = [OutFrame(id=head, data=_ENCODER.encode(e)) for e in [established, *events]]
    return EventStream(
        bus=bus,
        subscription=subscription,
        initial=initial,
        head=head,
        heartbeat_s=heartbeat_s,
        clock=clock,
    )
