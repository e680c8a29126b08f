"""The background life of one driven session: discovery feeding the session, the onboarding
network's changes, the discovery deadline that moves it to `active`, and the end of its
lifetime. The session's owner cancels it when the session closes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Protocol

from orchestrator.context import mac_var, session_id_var
from orchestrator.domain.errors import OrchestratorError
from orchestrator.domain.session import Session
from orchestrator.ports.devices import DeviceSighting, DeviceSource, OnboardingNetwork

log = logging.getLogger(__name__)


class SessionHooks(Protocol):
    """What the driver tells the session's owner."""

    async def observe(self, session_id: str, sighting: DeviceSighting) -> None:
        """Discovery saw a device."""
        ...

    async def finish_discovery(self, session_id: str) -> None:
        """The discovery deadline passed."""
        ...

    async def network_changed(self) -> None:
        """The onboarding network's status changed."""
        ...

    async def expire_if_due(self, session_id: str) -> None:
        """The session's lifetime may have run out."""
        ...


async def drive_session(
    session: Session,
    hooks: SessionHooks,
    *,
    devices: DeviceSource,
    network: OnboardingNetwork,
    clock: Callable[[], datetime],
    sleep: Callable[[float], Awaitable[None]],
) -> None:
    """Run discovery and the session's timers until cancelled."""
    session_id_var.set(session.id)

    async def at(deadline: datetime) -> None:
        await sleep(max(0.0, (deadline - clock()).total_seconds()))

    async def discover() -> None:
        try:
            async with contextlib.aclosing(devices.sightings(session.id)) as sightings:
                async for sighting in sightings:
                    mac_var.set(sighting.mac)
                    await hooks.observe(session.id, sighting)
        except OrchestratorError:
            log.exception("discovery for session %s stopped", session.id)

    async def watch_network() -> None:
        async for _ in network.watch():
            await hooks.network_changed()

    async def finish_discovery() -> None:
        timeout = timedelta(seconds=session.config.discovery_timeout_seconds)
        await at(session.created_at + timeout)
        await hooks.finish_discovery(session.id)

    async def expire() -> None:
        if session.expires_at is not None:
            await at(session.expires_at)
            await hooks.expire_if_due(session.id)

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(discover())
            group.create_task(watch_network())
            group.create_task(finish_discovery())
            group.create_task(expire())
    except Exception:
        # A bug in one session's background work must not take the appliance down; the
        # session stays in the store and is recoverable after a restart.
        log.exception("background work of session %s failed", session.id)
