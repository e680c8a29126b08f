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


@dataclass(slots=True)
class EventStream:
    """An opened stream: its first frames are ready, live ones follow from the subscription."""

    bus: EventBus
    subscription: Subscription
    initial: list[OutFrame]
    head: int
    heartbeat_s: float
    clock: Callable[[], datetime]

    async def frames(self) -> AsyncIterator[OutFrame]:
        """The initial frames, then live events, with a heartbeat whenever the line is idle."""
        last = self.head
        try:
            for frame in self.initial:
                yield frame
                # A suspension point per frame: without one, a client that left during a
                # big snapshot goes unnoticed (the server's disconnect watcher never runs)
                # and every remaining frame is written to a dead socket.
                await asyncio.sleep(0)
            while True:
                live = await self.subscription.next(self.heartbeat_s)
                if live is None:
                    heartbeat = Event(
                        type=EventType.CONNECTION_HEARTBEAT, timestamp=self.clock(), payload=None
                    )
                    yield OutFrame(id=last, data=_ENCODER.encode(heartbeat))
                    continue
                last = live.seq
                yield OutFrame(id=live.seq, data=live.data)
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
