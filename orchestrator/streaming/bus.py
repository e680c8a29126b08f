"""The event bus: every event is appended to the retained log, then offered to each live
subscriber's bounded queue.

The producer never waits for a subscriber: a queue that is full means that subscriber fell
behind, so it is cut off (its stream ends) and the client reconnects with Last-Event-ID to
replay what it missed from the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

import msgspec

from orchestrator.domain.events import Event
from orchestrator.ports.storage import EventLog

log = logging.getLogger(__name__)

_ENCODER = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Frame:
    """One encoded event and its sequence number."""

    seq: int
    session_id: str | None
    data: bytes


class StreamEnded(Exception):  # noqa: N818 - an ending, not an error
    """The subscription ended: the server is shutting down or the subscriber fell behind."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(eq=False, slots=True)
class Subscription:
    """A subscriber's bounded queue of frames."""

    session_filter: str | None
    queue: asyncio.Queue[Frame | StreamEnded]
    ended: StreamEnded | None = field(default=None)

    def wants(self, session_id: str | None) -> bool:
        """Session-less events (the network) go to everyone; others only to their session."""
        return self.session_filter is None or session_id in (None, self.session_filter)

    def offer(self, frame: Frame) -> bool:
        """Queue `frame` without waiting; False (and the subscription ended) when full."""
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.end(StreamEnded("subscriber fell behind; reconnect with Last-Event-ID"))
            return False
        return True

    def end(self, reason: StreamEnded) -> None:
        """End the stream at once: queued frames are dropped, the reader sees `reason` next."""
        if self.ended is not None:
            return
        self.ended = reason
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(reason)

    def ready(self, limit: int) -> list[Frame]:
        """Up to `limit` frames already queued, without waiting. An ending stays queued for
        `next` to raise."""
        frames: list[Frame] = []
        while len(frames) < limit and not self.queue.empty():
            item = self.queue.get_nowait()
            if isinstance(item, StreamEnded):
                self.queue.put_nowait(item)  # the queue was empty: there is room
                break
            frames.append(item)
        return frames

    async def next(self, timeout_s: float) -> Frame | None:
        """The next frame, or None when nothing arrived within `timeout_s` (time to send a
        heartbeat). Raises StreamEnded when the subscription is over."""
        try:
            async with asyncio.timeout(timeout_s):
                item = await self.queue.get()
        except TimeoutError:
            return None
        if isinstance(item, StreamEnded):
            raise item
        return item


class EventBus:
    """Publishes events to the log and to live subscribers."""

    def __init__(
        self,
        log: EventLog,
        *,
        queue_size: int = 1000,
        keep_last: int = 50_000,
        atomic: Callable[[], AbstractAsyncContextManager[None]] = contextlib.nullcontext,
    ) -> None:
        self._log = log
        self._atomic = atomic
        self._queue_size = queue_size
        self._keep_last = keep_last
        self._subscribers: set[Subscription] = set()
        self._lock = asyncio.Lock()
        self._head = 0
        self._published = 0
        self.dropped_subscribers = 0

    async def start(self) -> None:
        """Learn the newest retained sequence number (frames carry it before any publish)."""
        bounds = await self._log.bounds()
        self._head = bounds[1] if bounds else 0

    @property
    def head(self) -> int:
        """The sequence number of the newest published event."""
        return self._head

    @property
    def log(self) -> EventLog:
        """The retained log, for replay."""
        return self._log

    async def publish(self, event: Event) -> int:
        """Append `event` to the log and offer it to every interested subscriber."""
        data = _ENCODER.encode(event)
        # The store's unit of work first (joined when the caller has one open), then the
        # bus's lock: always in that order, so a task holding one never waits for the other
        # held by a task waiting for the first. One lock, so fan-out order is log order and
        # a subscriber never sees seq N+1 before N.
        async with self._atomic(), self._lock:
            seq = await self._log.append(event)
            self._head = seq
            frame = Frame(seq=seq, session_id=event.session_id, data=data)
            for subscriber in list(self._subscribers):
                if subscriber.wants(frame.session_id) and not subscriber.offer(frame):
                    self._subscribers.discard(subscriber)
                    self.dropped_subscribers += 1
                    log.warning("SSE subscriber fell behind at seq %d and was disconnected", seq)
            self._published += 1
            if self._published % 1000 == 0:
                await self._log.trim(self._keep_last)
        return seq

    def subscribe(self, session_filter: str | None) -> tuple[Subscription, int]:
        """A new subscription and the head it starts after: it receives every event with a
        higher sequence number. Synchronous, so nothing can be published in between."""
        subscription = Subscription(
            session_filter=session_filter, queue=asyncio.Queue(self._queue_size)
        )
        self._subscribers.add(subscription)
        return subscription, self._head

    def unsubscribe(self, subscription: Subscription) -> None:
        """Forget a subscription (its stream closed)."""
        self._subscribers.discard(subscription)

    def close_all(self) -> None:
        """End every stream (server shutdown): open responses finish at once."""
        for subscription in self._subscribers:
            subscription.end(StreamEnded("server shutting down"))
        self._subscribers.clear()

    @property
    def subscriber_count(self) -> int:
        """Live subscriptions."""
        return len(self._subscribers)
