"""The event bus: every published event is appended to the event log first, so a client that
reconnects can replay what it missed."""

from __future__ import annotations

from orchestrator.domain.events import Event
from orchestrator.ports.storage import EventLog


class EventBus:
    """Publishes domain events into the retained log."""

    def __init__(self, log: EventLog) -> None:
        self._log = log

    async def publish(self, event: Event) -> int:
        """Append `event`; return its sequence number."""
        return await self._log.append(event)
