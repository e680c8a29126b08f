"""The latest `online` seen on each device status topic, and the attempts waiting for one.

Fed with raw status messages by whoever subscribes (the broker link, or the in-memory fake);
no I/O of its own. Only an `online` carrying an attempt's nonce and the device's MAC proves
that attempt: a retained message from an earlier attempt carries another nonce.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import msgspec

from orchestrator.broker.settings import is_status_topic
from orchestrator.domain.mac import Mac, is_mac, parse_mac
from orchestrator.protocol.status import Online, decode_status

log = logging.getLogger(__name__)

MAX_TOPICS = 100_000
"""Topics remembered at most; the oldest news is forgotten first (one entry per device)."""


@dataclass(slots=True, kw_only=True)
class _Waiter:
    mac: Mac
    nonce: str
    found: asyncio.Future[Online]

    def offer(self, online: Online) -> None:
        if not self.found.done() and online.nonce == self.nonce and _mac_of(online) == self.mac:
            self.found.set_result(online)


class OnlineBoard:
    """Implements OnlineProofs over the status messages handed to `receive`."""

    def __init__(self, topic_base: str, *, max_topics: int = MAX_TOPICS) -> None:
        self._topic_base = topic_base
        self._max_topics = max_topics
        self._latest: dict[str, Online] = {}
        self._waiters: dict[str, list[_Waiter]] = {}

    @property
    def waiting(self) -> int:
        """How many waits are under way."""
        return sum(len(waiters) for waiters in self._waiters.values())

    def receive(self, topic: str, payload: bytes) -> None:
        """Take one message of a status topic; garbage is logged and dropped."""
        if not payload:
            return  # a retained message being cleared
        try:
            message = decode_status(payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            # The payload may hold anything; the topic says whose it is.
            log.warning("ignored an unreadable status message on %s", topic)
            return
        if not isinstance(message, Online):
            return
        # Re-inserting keeps the dict in arrival order, so the first key is the stalest.
        self._latest.pop(topic, None)
        self._latest[topic] = message
        if len(self._latest) > self._max_topics:
            del self._latest[next(iter(self._latest))]
        for waiter in self._waiters.get(topic, ()):
            waiter.offer(message)

    async def wait_online(self, status_topic: str, mac: Mac, nonce: str) -> Online:
        """The first `online` on `status_topic` from `mac` carrying `nonce`, including the
        latest one seen before this call."""
        if not is_status_topic(self._topic_base, status_topic):
            raise ValueError(f"{status_topic!r} is not a status topic under {self._topic_base!r}")
        waiter = _Waiter(mac=mac, nonce=nonce, found=asyncio.get_running_loop().create_future())
        if (latest := self._latest.get(status_topic)) is not None:
            waiter.offer(latest)
            if waiter.found.done():
                return waiter.found.result()
        waiting = self._waiters.setdefault(status_topic, [])
        waiting.append(waiter)
        try:
            return await waiter.found
        finally:
            waiting.remove(waiter)
            if not waiting and self._waiters.get(status_topic) is waiting:
                del self._waiters[status_topic]


def _mac_of(online: Online) -> Mac | None:
    return parse_mac(online.mac) if is_mac(online.mac) else None
