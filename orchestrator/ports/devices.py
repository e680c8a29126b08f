"""How devices enter a session (discovery) and how provisioning work leaves it (the engine)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

import msgspec

from orchestrator.domain.candidate import CandidateEvent, Failure
from orchestrator.domain.mac import Mac
from orchestrator.domain.network import NetworkStatus


class DeviceSighting(msgspec.Struct, frozen=True, kw_only=True):
    """A device seen on the onboarding network, with what it told us about itself."""

    mac: Mac
    ip: str
    rssi: int
    firmware_version: str
    present: bool = True
    """False when the device left the network."""


class DeviceSource(Protocol):
    """Discovery: sightings for an open session, until the caller stops iterating."""

    def sightings(self, session_id: str) -> AsyncIterator[DeviceSighting]:
        """An endless stream of sightings; cancelled by the session's owner when it closes."""
        ...


class ProgressSink(Protocol):
    """What the engine reports back: one candidate event at a time."""

    async def record(
        self, session_id: str, mac: Mac, event: CandidateEvent, failure: Failure | None = None
    ) -> None:
        """Apply `event` to the candidate (DELIVERED, VERIFY, VERIFIED or FAIL)."""
        ...


class Engine(Protocol):
    """Provisioning work. Submissions return at once; outcomes arrive through a ProgressSink."""

    async def submit(self, session_id: str, macs: Sequence[Mac]) -> None:
        """Queue these candidates (already `provisioning`) for credential delivery."""
        ...

    async def cancel(self, session_id: str, mac: Mac) -> None:
        """Stop working on one candidate (the operator skipped it)."""
        ...

    async def stop_session(self, session_id: str) -> None:
        """Drop all queued and running work of a session that is closing."""
        ...


class OnboardingNetwork(Protocol):
    """The onboarding access point."""

    async def up(self) -> None:
        """Bring the onboarding network up (idempotent)."""
        ...

    async def down(self) -> None:
        """Take it down (idempotent)."""
        ...

    def status(self) -> NetworkStatus:
        """Its current status."""
        ...
