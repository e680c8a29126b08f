"""The demo appliance: a simulated loopback fleet, its target network's Mosquitto (with
dynamic security) and the appliance configured against them as `orchestrator serve` would be
on a Pi, serving HTTP, with an allowlist, an API key and an enrolled TOTP seed ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import secrets
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import msgspec

from orchestrator.batch.allowlist import AllowlistDraft
from orchestrator.broker.settings import BrokerSettings
from orchestrator.demo.codes import CurrentCode, current_code
from orchestrator.demo.datadir import claim_data_dir
from orchestrator.demo.errors import DemoError
from orchestrator.demo.roster import Roster, demo_roster
from orchestrator.device.settings import AgentTiming
from orchestrator.discovery.settings import DiscoverySettings, NetworkBackend, NetworkSettings
from orchestrator.domain.discovery import SourceKind
from orchestrator.domain.mac import Mac
from orchestrator.security.secretbox import SecretBox
from orchestrator.security.stepup import SecuritySettings
from orchestrator.security.totp_enrollment import enroll_totp
from orchestrator.service import Appliance, http_server, run_appliance, utc_now
from orchestrator.settings import LoggingSettings, ServerSettings, Settings, StorageSettings
from orchestrator.sim.broker import free_port
from orchestrator.sim.fleet import Fleet, loopback_fleet

ACCOUNT = "demo"
"""The API key's name and the TOTP account authenticator apps show."""
ISSUER = "Delicasa Orchestrator demo"
BROKER_ADMIN = "orchestrator"
BACKLOG = 128
STOP_TIMEOUT_S = 10.0
"""uvicorn's own graceful shutdown takes at most 5 s (service.http_server); room beyond it."""


class DemoOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Where the demo listens and keeps its state, and how fast its devices are."""

    host: str = "127.0.0.1"
    port: int = 8080
    """0 picks a free port."""
    data_dir: Path | None = None
    """None: a fresh directory under the temporary directory, removed when the demo stops."""
    timing: AgentTiming | None = None
    """The simulated devices' delays (None: realistic ones, a few seconds per device)."""
    log_level: str = "INFO"


@dataclass(frozen=True, slots=True)
class Demo:
    """A running demo and what a newcomer needs to use it."""

    url: str
    """The console, `http://host:port/`."""
    data_dir: Path
    kept: bool
    """Whether the data directory stays after the demo stops (it was given)."""
    roster: Roster
    fleet: Fleet
    appliance: Appliance
    api_key: str = field(repr=False)
    enrolment: str = field(repr=False)
    """The TOTP seed as `orchestrator totp enroll` shows it: a terminal QR code and its URI."""
    sealer: SecretBox = field(repr=False)

    async def current_code(self, now: datetime) -> CurrentCode:
        """DEMO ONLY: the TOTP code at `now`."""
        return await current_code(self.appliance.store.totp, self.sealer, now)


def demo_settings(
    options: DemoOptions, data_dir: Path, fleet: Fleet, admin: tuple[str, str], device_port: int
) -> Settings:
    """The appliance's settings for `fleet`: no radio, mDNS discovery on loopback under the
    fleet's service type, one device port, the fleet's broker, and TOTP step-up on."""
    return Settings(
        server=ServerSettings(host=options.host, port=options.port),
        storage=StorageSettings(data_dir=str(data_dir)),
        security=SecuritySettings(totp_issuer=ISSUER),
        network=NetworkSettings(backend=NetworkBackend.STANDBY, address="127.0.0.1"),
        discovery=DiscoverySettings(
            sources=frozenset({SourceKind.MDNS}),
            mdns_service_type=fleet.service_type,
            device_port=device_port,
        ),
        broker=BrokerSettings(url=fleet.broker.url, username=admin[0], password=admin[1]),
        logging=LoggingSettings(level=options.log_level),
    )


def listener(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host:port` (port 0 picks one); DemoError when it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=BACKLOG)
    except OSError as exc:
        raise DemoError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def url_of(sock: socket.socket) -> str:
    """`http://host:port/` of a listening socket."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


@contextlib.asynccontextmanager
async def demo_appliance(
    options: DemoOptions | None = None,
    *,
    roster: Roster | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> AsyncIterator[Demo]:
    """Run the demo until the block ends; everything (HTTP server, appliance, fleet, broker,
    a throwaway data directory) is stopped and removed on the way out."""
    options = options or DemoOptions()
    roster = roster or demo_roster()
    async with contextlib.AsyncExitStack() as stack:
        # Bound first: a taken port fails before anything else has started.
        sock = stack.enter_context(contextlib.closing(listener(options.host, options.port)))
        if options.data_dir is None:
            data_dir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="orchestrator-demo-"))
            stack.push_async_callback(remove_tree, data_dir)
        else:
            data_dir = options.data_dir
        await asyncio.to_thread(claim_data_dir, data_dir)
        admin = (BROKER_ADMIN, secrets.token_urlsafe(16))
        device_port = free_port()
        fleet = await stack.enter_async_context(
            loopback_fleet(
                roster.spec, timing=options.timing, broker_admin=admin, device_port=device_port
            )
        )
        settings = demo_settings(options, data_dir, fleet, admin, device_port)
        appliance = await stack.enter_async_context(run_appliance(settings, clock=clock))
        await appliance.services.allowlist.import_entries(allowlist_of(roster, fleet))
        _, api_key = await appliance.services.api_keys.create(ACCOUNT)
        sealer = SecretBox.from_key_file(settings.storage.secret_key_path)
        enrolment = io.StringIO()
        # A demo directory used before has a seed already: a new one for every run.
        await enroll_totp(
            appliance.store, sealer, issuer=ISSUER, account=ACCOUNT, out=enrolment, clock=clock,
            replace=True,
        )  # fmt: skip
        server = http_server(appliance, options.host, options.port)
        async with asyncio.TaskGroup() as tasks:
            served = tasks.create_task(server.serve(sockets=[sock]))
            try:
                yield Demo(
                    url=url_of(sock),
                    data_dir=data_dir,
                    kept=options.data_dir is not None,
                    roster=roster,
                    fleet=fleet,
                    appliance=appliance,
                    api_key=api_key,
                    enrolment=enrolment.getvalue(),
                    sealer=sealer,
                )
            finally:
                server.request_exit()
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await served


async def remove_tree(path: Path) -> None:
    """Remove the throwaway data directory `path` and everything in it."""
    await asyncio.to_thread(shutil.rmtree, path, ignore_errors=True)


def allowlist_of(roster: Roster, fleet: Fleet) -> list[AllowlistDraft]:
    """The roster's allowlisted devices, described by family and model."""
    listed = set(roster.allowlisted)
    return [
        AllowlistDraft(
            mac=Mac(device.mac),
            description=f"demo {device.agent.identity.family} {device.agent.identity.model}",
        )
        for device in fleet.devices
        if device.mac in listed
    ]
