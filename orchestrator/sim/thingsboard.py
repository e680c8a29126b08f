"""A faithful ThingsBoard stand-in for tests: its MQTT transport (3.1.1) on loopback, with the
session rules of `thingsboard_session`, the provisioning rules of `thingsboard_registry`,
fault injection for the device side's retry paths, and inspection of everything it saw.

    spec = ThingsBoardSpec(profiles=(ProvisionProfile(key="k", secret="s"),))
    async with thingsboard_standin(spec) as tb:
        ...  # a device provisions against tb.host, tb.port
        await tb.wait_until(lambda: len(tb.devices) == 1)

Two behaviours are spec choices: `require_subscription` (default True, stricter than
ThingsBoard, which publishes the answer to an unsubscribed requester too) and
`repeat_pre_provisioned` (default True, as older releases; the current source answers FAILURE
to a pre-provisioned device that asks again).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any, Self

from orchestrator.sim.mqtt_wire import MalformedPacketError
from orchestrator.sim.thingsboard_registry import (
    Credentials,
    CredentialsType,
    Device,
    MalformedRequestError,
    ProvisionMode,
    ProvisionProfile,
    ProvisionStatus,
    Registry,
)
from orchestrator.sim.thingsboard_session import (
    PROVISION,
    READ_CHUNK,
    REQUEST_TOPIC,
    RESPONSE_TOPIC,
    TELEMETRY_TOPIC,
    IpLimiter,
    Journal,
    ProvisionFault,
    ProvisionRecord,
    Session,
    SessionClosedError,
    ThingsBoardSpec,
)

__all__ = [
    "PROVISION",
    "REQUEST_TOPIC",
    "RESPONSE_TOPIC",
    "TELEMETRY_TOPIC",
    "ConnectFault",
    "Credentials",
    "CredentialsType",
    "Device",
    "ProvisionFault",
    "ProvisionMode",
    "ProvisionProfile",
    "ProvisionRecord",
    "ProvisionStatus",
    "Stats",
    "ThingsBoardSpec",
    "ThingsBoardStandIn",
    "thingsboard_standin",
]

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 1.0
BACKLOG = 1024


class ConnectFault(StrEnum):
    """What happens to a new TCP connection instead of a normal session."""

    RESET = "reset"
    """Accepted, then closed at once, before CONNACK."""
    SILENT = "silent"
    """Accepted, CONNECT never answered: the client must time out."""


@dataclass(frozen=True, slots=True)
class Stats:
    """Counts since start."""

    connections: int = 0
    """TCP connections accepted."""
    provision_sessions: int = 0
    device_sessions: int = 0
    refused_connects: int = 0
    """CONNACK 5 (unknown credentials)."""
    blocked_connects: int = 0
    """Connections closed at once because their IP is blocked."""
    provision_requests: int = 0
    provision_answers: int = 0
    telemetry_messages: int = 0
    protocol_closes: int = 0
    """Connections closed for a malformed packet or request, or a forbidden action."""


class ThingsBoardStandIn:
    """The running stand-in: owns its listener and one task per connection."""

    def __init__(
        self,
        spec: ThingsBoardSpec,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.host = host
        self.port = port
        self._registry = Registry(
            spec.profiles,
            spec.devices,
            repeat_pre_provisioned=spec.repeat_pre_provisioned,
            legacy_fields=spec.legacy_response_fields,
        )
        self._limiter = IpLimiter(spec, clock)
        self._journal = Journal()
        self._provision_faults: deque[ProvisionFault] = deque()
        self._connect_faults: deque[ConnectFault] = deque()
        self._ids = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._group: asyncio.TaskGroup | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    async def __aenter__(self) -> Self:
        if self._group is not None:
            raise RuntimeError("a ThingsBoardStandIn runs once")
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        try:
            await self.accept_connections()
        except BaseException:
            await self._group.__aexit__(None, None, None)
            raise
        log.info("ThingsBoard stand-in listening on %s:%d", self.host, self.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing = True
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in self._tasks:
            task.cancel()
        if self._group is not None:
            # The body's own exception is not the group's business: it propagates as it is,
            # not wrapped in an ExceptionGroup. A crashed connection task still surfaces.
            await self._group.__aexit__(None, None, None)
        if server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await server.wait_closed()

    async def refuse_connections(self) -> None:
        """Close the listener: new connections are refused (ECONNREFUSED); open ones go on."""
        server, self._server = self._server, None
        if server is not None:
            server.close()

    async def accept_connections(self) -> None:
        """Listen (again) on the same port; with port 0 the first call picks a free one."""
        if self._server is not None or self._closing:
            return
        # A deep backlog: a fleet connecting at once must not wait out SYN retransmissions.
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, reuse_address=True, backlog=BACKLOG
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    # --- control and inspection ---------------------------------------------------------------

    @property
    def url(self) -> str:
        """`mqtt://host:port`."""
        return f"mqtt://{self.host}:{self.port}"

    @property
    def devices(self) -> Mapping[str, Device]:
        """Every device by name, with its credentials (a live read-only view)."""
        return self._registry.devices

    @property
    def provisions(self) -> tuple[ProvisionRecord, ...]:
        """Every provision request received, in order."""
        return tuple(self._journal.provisions)

    @property
    def stats(self) -> Stats:
        """The counts so far."""
        return Stats(**self._journal.counts)

    @property
    def open_connections(self) -> int:
        """Connections being served right now."""
        return len(self._tasks)

    def telemetry(self, device: str) -> tuple[Any, ...]:
        """The telemetry payloads (parsed JSON) `device` published, in order."""
        return tuple(self._journal.telemetry.get(device, ()))

    def attributes(self, device: str) -> tuple[Any, ...]:
        """The client-attribute payloads (parsed JSON) `device` published, in order."""
        return tuple(self._journal.attributes.get(device, ()))

    def add_device(self, name: str, token: str) -> Device:
        """Create a device with an access token, as an administrator would (ValueError if the
        name or token is taken)."""
        device = self._registry.add_device(name, Credentials.access_token(token))
        self._journal.notify()
        return device

    def inject_provision_fault(self, fault: ProvisionFault, *, times: int = 1) -> None:
        """Apply `fault` to the next `times` provision requests (queued after earlier ones)."""
        self._provision_faults.extend([fault] * times)

    def inject_connect_fault(self, fault: ConnectFault, *, times: int = 1) -> None:
        """Apply `fault` to the next `times` TCP connections (queued after earlier ones)."""
        self._connect_faults.extend([fault] * times)

    async def wait_until(self, predicate: Callable[[], bool], *, timeout_s: float = 5.0) -> None:
        """Return once `predicate()` holds (checked after every change the stand-in sees);
        TimeoutError after `timeout_s`."""
        await self._journal.wait_until(predicate, timeout_s)

    # --- connections ------------------------------------------------------------------------

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # asyncio calls this for each accepted connection; the task joins our group so that
        # closing the stand-in ends every connection with it.
        if self._closing or self._group is None:
            writer.transport.abort()
            return
        try:
            task = self._group.create_task(self._serve(next(self._ids), reader, writer))
        except RuntimeError:  # the group is shutting down after a crashed connection task
            writer.transport.abort()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(
        self, connection: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = writer.get_extra_info("peername")
        ip = str(peer[0]) if peer else ""
        journal = self._journal
        journal.count("connections")
        try:
            if self._limiter.blocked(ip):
                journal.count("blocked_connects")
                return
            fault = self._connect_faults.popleft() if self._connect_faults else None
            if fault is ConnectFault.RESET:
                return
            if fault is ConnectFault.SILENT:
                await _read_until_eof(reader, self.spec.idle_timeout_s)
                return
            session = Session(
                self.spec,
                self._registry,
                self._limiter,
                journal,
                self._provision_faults,
                connection=connection,
                ip=ip,
                writer=writer,
            )
            await session.run(reader)
        except (SessionClosedError, MalformedPacketError, MalformedRequestError) as exc:
            journal.count("protocol_closes")
            log.debug("connection %d from %s closed: %s", connection, ip, exc)
        except (OSError, TimeoutError) as exc:
            log.debug("connection %d from %s ended: %r", connection, ip, exc)
        finally:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await writer.wait_closed()
            journal.notify()


async def _read_until_eof(reader: asyncio.StreamReader, limit_s: float) -> None:
    async with asyncio.timeout(limit_s):
        while await reader.read(READ_CHUNK):
            pass


def thingsboard_standin(
    spec: ThingsBoardSpec | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    clock: Callable[[], float] = time.monotonic,
) -> ThingsBoardStandIn:
    """A stand-in to run with `async with` (port 0: a free one, read `.port` inside)."""
    return ThingsBoardStandIn(spec or ThingsBoardSpec(), host=host, port=port, clock=clock)
