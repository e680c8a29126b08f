"""Port implementations for an appliance that has no discovery or provisioning engine
installed: the API works, sessions open and close, and nothing pretends to reach a device."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Sequence

from orchestrator.domain.mac import Mac
from orchestrator.ports.devices import DeviceSighting

log = logging.getLogger(__name__)


class NoDiscovery:
    """Sees no devices; the session waits until it is stopped."""

    async def sightings(self, session_id: str) -> AsyncGenerator[DeviceSighting, None]:
        """Never yields; ends when the session's task is cancelled."""
        log.warning(
            "session %s: no discovery backend is configured; no devices will appear", session_id
        )
        await asyncio.Event().wait()
        nothing: tuple[DeviceSighting, ...] = ()
        for sighting in nothing:  # never runs; makes this an async generator
            yield sighting


class NoEngine:
    """Accepts work and says plainly that nothing will carry it out."""

    async def submit(self, session_id: str, macs: Sequence[Mac]) -> None:
        """Log the request; the devices stay `provisioning` until an engine is installed."""
        log.warning(
            "session %s: %d devices requested but no provisioning engine is configured",
            session_id,
            len(macs),
        )

    async def cancel(self, session_id: str, mac: Mac) -> None:
        """Nothing is running, so nothing to cancel."""

    async def stop_session(self, session_id: str) -> None:
        """Nothing is running, so nothing to stop."""
