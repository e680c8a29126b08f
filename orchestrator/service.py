"""The composition root: builds every edge in dependency order and owns their lifetimes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import secrets
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import msgspec
import uvicorn
from litestar import Litestar

from orchestrator import __version__
from orchestrator.api.app import create_app
from orchestrator.api.state import Services
from orchestrator.api.streams import Streams
from orchestrator.batch.allowlist import AllowlistService
from orchestrator.batch.audit import Auditor
from orchestrator.batch.pairing import PairingService
from orchestrator.batch.report import ReportService
from orchestrator.batch.service import BatchRules, BatchService
from orchestrator.batch.unavailable import NoEngine
from orchestrator.edges import Edges, appliance_edges
from orchestrator.ports.devices import Engine
from orchestrator.ports.storage import Store
from orchestrator.provisioning.engine import ProvisioningEngine
from orchestrator.security.apikeys import ApiKeys
from orchestrator.security.console_sessions import ConsoleSessions
from orchestrator.security.secretbox import SecretBox
from orchestrator.security.stepup import StepUp
from orchestrator.settings import Settings
from orchestrator.storage import open_sqlite_store
from orchestrator.streaming.bus import EventBus
from orchestrator.telemetry import Metrics

_SESSION_ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"


def utc_now() -> datetime:
    """The appliance clock (UTC, tz-aware)."""
    return datetime.now(UTC)


def new_session_id() -> str:
    """`sess_` + 16 lowercase alphanumerics: URL-safe, unguessable."""
    return "sess_" + "".join(secrets.choice(_SESSION_ID_CHARS) for _ in range(16))


class Appliance(msgspec.Struct, frozen=True, kw_only=True):
    """A running appliance: its store, services, event bus and HTTP app."""

    store: Store
    services: Services
    bus: EventBus
    app: Litestar
    engine: Engine


@contextlib.asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[Store]:
    """The SQLite store in the configured data directory (created 0700 if missing)."""
    # Once at start-up, before anything else runs: blocking the loop here costs nothing.
    Path(settings.storage.data_dir).mkdir(mode=0o700, parents=True, exist_ok=True)  # noqa: ASYNC240
    async with open_sqlite_store(settings.storage.database_path) as store:
        yield store


@contextlib.asynccontextmanager
async def run_appliance(
    settings: Settings,
    *,
    edges: Edges | None = None,
    clock: Callable[[], datetime] = utc_now,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AsyncIterator[Appliance]:
    """Build the appliance; everything is closed again in reverse order on exit."""
    async with contextlib.AsyncExitStack() as stack:
        if edges is None:
            edges = await stack.enter_async_context(appliance_edges(settings))
        store = await stack.enter_async_context(open_store(settings))
        sealer = SecretBox.from_key_file(settings.storage.secret_key_path)
        bus = EventBus(
            store.events,
            queue_size=settings.streams.queue_size,
            keep_last=settings.storage.event_log_keep,
            atomic=store.atomic,
        )
        await bus.start()
        # Ends open event streams when the appliance stops, however it stops.
        stack.callback(bus.close_all)
        auditor = Auditor(store.audit, clock)
        # The gauge reads the batch service, built below; it is read only when scraped.
        metrics = Metrics(lambda: batches.devices_by_state())  # noqa: PLW0108 - bound below
        engine = await stack.enter_async_context(
            engine_of(edges, store, auditor, metrics, settings, clock=clock, sleep=sleep)
        )
        pairing = PairingService(
            store=store,
            client=edges.client,
            auditor=auditor,
            clock=clock,
            settings=settings.pairing,
        )
        await stack.enter_async_context(pairing.purging())
        batches = await stack.enter_async_context(
            BatchService(
                pairing=pairing,
                store=store,
                sealer=sealer,
                engine=engine,
                network=edges.network,
                devices=edges.devices,
                events=bus,
                clock=clock,
                sleep=sleep,
                new_session_id=new_session_id,
                run_id=uuid.uuid4().hex,
                rules=BatchRules(
                    max_retries=settings.batch.max_retries,
                    session_ttl_s=settings.batch.session_ttl_s,
                ),
            )
        )
        services = Services(
            batches=batches,
            allowlist=AllowlistService(store, clock),
            pairing=pairing,
            api_keys=ApiKeys(store.api_keys, clock),
            auditor=auditor,
            step_up=StepUp(store.totp, sealer, auditor, clock, settings.security),
            reports=ReportService(store, clock),
            database_health=store.health,
            version=__version__,
            metrics=metrics,
        )
        streams = Streams(
            bus=bus,
            console_sessions=ConsoleSessions(clock, settings.streams.console_session_ttl_s),
            clock=clock,
            heartbeat_s=settings.streams.heartbeat_s,
            allow_anonymous=settings.streams.allow_anonymous,
        )
        if isinstance(engine, ProvisioningEngine):
            engine.attach(batches)
        app = create_app(
            services, streams, version=__version__, cors_origins=settings.server.cors_origins
        )
        yield Appliance(store=store, services=services, bus=bus, app=app, engine=engine)


@contextlib.asynccontextmanager
async def engine_of(
    edges: Edges,
    store: Store,
    auditor: Auditor,
    metrics: Metrics,
    settings: Settings,
    *,
    clock: Callable[[], datetime],
    sleep: Callable[[float], Awaitable[None]],
) -> AsyncIterator[Engine]:
    """The edges' own engine, else the provisioning engine over their carriers, else one
    that says plainly that nothing will provision."""
    if edges.engine is not None:
        yield edges.engine
        return
    if edges.carriers is None:
        yield NoEngine()
        return
    carriers = edges.carriers
    async with ProvisioningEngine(
        attempts=store.attempts,
        transport=carriers.transport,
        accounts=carriers.accounts,
        proofs=carriers.proofs,
        broker=carriers.broker,
        auditor=auditor,
        observer=metrics,
        settings=settings.engine,
        clock=clock,
        monotonic=time.monotonic,
        sleep=sleep,
    ) as engine:
        yield engine


class AppServer(uvicorn.Server):
    """uvicorn, ending the appliance's event streams as soon as it is asked to exit.

    uvicorn waits for open connections to finish before it shuts down, and an event stream
    never finishes by itself: without this hook, one open dashboard would hold the appliance
    up until uvicorn's graceful-shutdown timeout.
    """

    def __init__(self, config: uvicorn.Config, bus: EventBus) -> None:
        super().__init__(config)
        self._bus = bus
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        """Serve until asked to exit (remembering the loop the streams live on)."""
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Signal handler: end the streams, then stop serving."""
        self._end_streams()
        super().handle_exit(sig, frame)

    def request_exit(self) -> None:
        """Stop as SIGTERM would, without a signal (for embedding and tests)."""
        self._end_streams()
        self.should_exit = True

    def _end_streams(self) -> None:
        # A signal handler may interrupt the loop anywhere: hand the work to the loop itself.
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._bus.close_all)


def http_server(appliance: Appliance, host: str, port: int) -> AppServer:
    """The HTTP server for `appliance` (port 0 picks a free port)."""
    config = uvicorn.Config(
        appliance.app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
    )
    return AppServer(config, appliance.bus)


async def serve(settings: Settings) -> None:
    """Run the appliance's HTTP server until SIGINT/SIGTERM."""
    async with run_appliance(settings) as appliance:
        server = http_server(appliance, settings.server.host, settings.server.port)
        # What start-up built (modules, the app, settings) lives as long as the process:
        # frozen, full collections no longer rescan it, so they pause the event loop less
        # during a batch (the dashboard's session read, docs/benchmarks.md).
        gc.collect()
        gc.freeze()
        await server.serve()
