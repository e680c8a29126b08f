"""Where domain events go."""

from __future__ import annotations

from typing import Protocol

from orchestrator.domain.events import Event


class EventPublisher(Protocol):
    """Records an event and hands it to live subscribers; never waits for a slow one."""

    async def publish(self, event: Event) -> int:
        """Publish `event`; return its sequence number."""
        ...
