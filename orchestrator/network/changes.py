"""Change notification for a value many tasks watch: each watcher sees the latest value after
every change, and a slow watcher skips what it missed instead of queueing it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

T = TypeVar("T")


class ChangeFeed:
    """Call `changed()` after every change; `watch(current)` yields `current()` now and again
    after each change. Must be used on one event loop."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def changed(self) -> None:
        """Wake every watcher."""
        self._event.set()
        self._event = asyncio.Event()

    async def watch(self, current: Callable[[], T]) -> AsyncIterator[T]:
        """`current()` now, then after every change, until the caller stops iterating."""
        while True:
            # Taken before yielding: a change while the watcher is busy is not missed.
            event = self._event
            yield current()
            await event.wait()
