"""How devices enter a session (discovery) and how provisioning work leaves it (the engine)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from typing import Protocol

import msgspec

from orchestrator.domain.candidate import (
    CandidateEvent,
    CandidateState,
    CloudRegistration,
    Failure,
)
from orchestrator.domain.mac import Mac
from orchestrator.domain.network import NetworkStatus, Station
from orchestrator.domain.session import SessionConfig
from orchestrator.protocol.messages import (
    CloudProvisioning,
    Credentials,
    DeliveryReceipt,
    DeviceInfo,
    PairingDisplay,
    SecurityScheme,
)


class DeviceSighting(msgspec.Struct, frozen=True, kw_only=True):
    """A device seen on the onboarding network, with what it told us about itself."""

    mac: Mac
    ip: str
    rssi: int
    firmware_version: str
    present: bool = True
    """False when the device left the network (the other fields are then its last known)."""
    family: str = ""
    model: str = ""
    state: str = ""
    """The device's own state (a protocol DeviceState value: `pairing`, `failed`, ...)."""
    failure: Failure | None = None
    """Why its last attempt to go online failed, as the device reports it."""


class DeviceSource(Protocol):
    """Discovery: sightings for an open session, until the caller stops iterating."""

    def sightings(self, session_id: str) -> AsyncGenerator[DeviceSighting, None]:
        """An endless stream of sightings; cancelled by the session's owner when it closes."""
        ...


class WorkOrder(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the engine needs to work on one in-flight device of a driven session.
    Holds the target Wi-Fi password: never log it (its repr leaves it out)."""

    session_id: str
    mac: Mac
    ip: str
    state: CandidateState
    target_ssid: str
    target_password: str
    config: SessionConfig
    container_id: str | None = None
    cloud: CloudProvisioning | None = None

    def __repr__(self) -> str:
        return f"WorkOrder(session_id={self.session_id!r}, mac={self.mac!r}, state={self.state})"


class ProgressSink(Protocol):
    """The engine's host: work orders out, candidate events back."""

    async def order(self, session_id: str, mac: Mac) -> WorkOrder | None:
        """The work order of an in-flight device, or None when it must not be worked on now
        (the session is paused, closing or not driven by this run; the device is no longer
        in flight)."""
        ...

    async def record(
        self,
        session_id: str,
        mac: Mac,
        event: CandidateEvent,
        failure: Failure | None = None,
        cloud: CloudRegistration | None = None,
    ) -> None:
        """Apply `event` to the candidate (DELIVERED, VERIFY, VERIFIED with what the device
        said about its cloud registration, or FAIL with its failure)."""
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


class DeviceUnreachableError(Exception):
    """A device did not answer on the onboarding network (or answered nonsense)."""


class DeviceTimeoutError(DeviceUnreachableError):
    """The request went out but no answer came in time: it may have taken effect."""


class DeviceRejectedError(DeviceUnreachableError):
    """The device answered with an error (`code` is its DeviceErrorCode value, or the HTTP
    status when the answer was not the protocol's error shape)."""

    def __init__(self, message: str, *, code: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class DeviceClient(Protocol):
    """Requests to one device's API on the onboarding network (the device protocol)."""

    async def info(self, ip: str) -> DeviceInfo:
        """GET /v1/info; DeviceUnreachableError when it does not answer."""
        ...

    async def show_pairing(self, ip: str, display: PairingDisplay) -> None:
        """POST /v1/pairing; DeviceUnreachableError when it does not answer."""
        ...


class DeviceTransport(DeviceClient, Protocol):
    """A transport that can also deliver credentials (the provisioning engine's adapter)."""

    async def deliver(
        self, ip: str, credentials: Credentials, scheme: SecurityScheme
    ) -> DeliveryReceipt:
        """Hand the device its credentials over `scheme`. DeviceTimeoutError when the answer
        did not come (it may have them), DeviceRejectedError when it refused, else
        DeviceUnreachableError."""
        ...


class OnboardingNetwork(Protocol):
    """The onboarding access point: the authority on which stations are associated."""

    async def up(self) -> None:
        """Bring the onboarding network up (idempotent)."""
        ...

    async def down(self) -> None:
        """Take it down (idempotent)."""
        ...

    def status(self) -> NetworkStatus:
        """Its current status."""
        ...

    def stations(self) -> Mapping[Mac, Station]:
        """The stations associated right now (empty while down)."""
        ...

    def watch(self) -> AsyncIterator[NetworkStatus]:
        """The status now, then again after every change (up, down, a station coming or
        going, a signal update). A slow watcher skips to the latest: nothing queues up."""
        ...
