"""A live appliance for browser tests (and scripts/console-screenshots.py): a loopback fleet,
the appliance composed from settings as `orchestrator serve` composes it, served by uvicorn
on a loopback port, TOTP step-up on with a seed enrolled here, and the chromium that Debian
ships (never a downloaded browser).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyotp
from playwright.async_api import Browser, Playwright, ViewportSize, async_playwright

from orchestrator.batch.pairing import PairingSettings
from orchestrator.broker.settings import BrokerSettings
from orchestrator.device.faults import FaultProfile
from orchestrator.device.settings import AgentTiming
from orchestrator.discovery.settings import DiscoverySettings, NetworkBackend, NetworkSettings
from orchestrator.domain.discovery import SourceKind
from orchestrator.security.stepup import SecuritySettings
from orchestrator.service import Appliance, http_server, run_appliance
from orchestrator.settings import Settings, StorageSettings, StreamSettings
from orchestrator.sim.broker import free_port
from orchestrator.sim.fleet import Fleet, FleetSpec, loopback_fleet

CHROMIUM = Path("/usr/bin/chromium")
"""Debian's chromium (`scripts/system-deps.sh` installs it); Playwright never downloads one."""
LANDSCAPE = ViewportSize(width=1280, height=800)
PORTRAIT = ViewportSize(width=800, height=1280)
"""A 10-inch tablet, both ways round."""

TIMING = AgentTiming(
    join_attempts=2, leave_after_s=0.3, join_retry_s=0, connect_timeout_s=5, reconnect_s=0,
    reboot_s=0, flap_s=0, stale_gap_s=0, slow_answer_s=0,
)  # fmt: skip
"""Devices that answer at once (tests/sim/test_fleet.py's FAST, giving up after two joins),
but hold their credentials a moment before they leave: discovery sees a retried device go
and come back, so its second failure is noticed even though it reads like the first."""
DEVICES = 6
FLEET = FleetSpec(devices=DEVICES, faults={FaultProfile.WRONG_PASSWORD: 1 / DEVICES}, seed=8)
"""Six devices, one of which is told the wrong password whatever it is sent."""
STEP_S = 30


@dataclass
class Codes:
    """TOTP codes of the enrolled seed, each for a time step not used before (the appliance
    accepts every step once; the next step is accepted too, for clock drift)."""

    seed: str
    last_step: int = -1

    def fresh(self) -> str:
        """A code the appliance has not seen: the current step's, else the next one's."""
        step = max(int(time.time()) // STEP_S, self.last_step + 1)
        self.last_step = step
        return pyotp.TOTP(self.seed).at(step * STEP_S)


@dataclass
class LiveConsole:
    """The running appliance: where the console is, the key to sign in with, TOTP codes."""

    url: str
    api_key: str
    codes: Codes
    appliance: Appliance
    fleet: Fleet

    @property
    def api(self) -> str:
        """The provisioning API's base URL."""
        return f"{self.url}/api/v1/provisioning"


@dataclass
class Bed:
    """A fleet and a data directory; appliances come and go on one port (a restart)."""

    fleet: Fleet
    data_dir: Path
    admin: tuple[str, str]
    device_port: int
    port: int = field(default_factory=free_port)
    api_key: str | None = None
    codes: Codes | None = None

    def settings(self) -> Settings:
        """The appliance's settings: mDNS discovery on loopback, no radio, the fleet's broker,
        step-up on for everything (the default)."""
        return Settings(
            storage=StorageSettings(data_dir=str(self.data_dir)),
            security=SecuritySettings(),
            # Devices' pairing QR codes link to this console's claim page.
            pairing=PairingSettings(console_base_url=f"http://127.0.0.1:{self.port}"),
            streams=StreamSettings(heartbeat_s=2.0),
            network=NetworkSettings(backend=NetworkBackend.STANDBY, address="127.0.0.1"),
            discovery=DiscoverySettings(
                sources=frozenset({SourceKind.MDNS}),
                mdns_service_type=self.fleet.service_type,
                device_port=self.device_port,
            ),
            broker=BrokerSettings(
                url=self.fleet.broker.url, username=self.admin[0], password=self.admin[1]
            ),
        )

    @contextlib.asynccontextmanager
    async def appliance(self) -> AsyncIterator[LiveConsole]:
        """One run of the appliance, served on this bed's port; the first run creates the API
        key and enrolls the TOTP seed, later runs find them in the data directory."""
        async with run_appliance(self.settings()) as appliance:
            if self.api_key is None or self.codes is None:
                _, self.api_key = await appliance.services.api_keys.create("technician")
                self.codes = Codes(await appliance.services.step_up.enroll())
            with _listening(self.port) as sock:
                server = http_server(appliance, "127.0.0.1", self.port)
                async with asyncio.TaskGroup() as group:
                    group.create_task(server.serve(sockets=[sock]))
                    try:
                        yield LiveConsole(
                            url=f"http://127.0.0.1:{self.port}",
                            api_key=self.api_key,
                            codes=self.codes,
                            appliance=appliance,
                            fleet=self.fleet,
                        )
                    finally:
                        server.request_exit()


@contextlib.contextmanager
def _listening(port: int) -> Iterator[socket.socket]:
    # Bound here, before uvicorn starts, so the browser can connect at once; SO_REUSEADDR lets
    # a restarted appliance take the port back while old connections linger in TIME_WAIT.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
        yield sock
    finally:
        sock.close()


@contextlib.asynccontextmanager
async def fleet_bed(data_dir: Path, spec: FleetSpec = FLEET) -> AsyncIterator[Bed]:
    """A loopback fleet of `spec` whose devices all listen on one port, with a broker that
    admits only accounts the appliance makes."""
    admin = ("orchestrator", secrets.token_urlsafe(12))
    device_port = free_port()
    async with loopback_fleet(
        spec, timing=TIMING, broker_admin=admin, device_port=device_port
    ) as fleet:
        yield Bed(fleet=fleet, data_dir=data_dir, admin=admin, device_port=device_port)


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's chromium, headless, driven by Playwright."""
    playwright: Playwright
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            # Root in a container: chromium's sandbox needs user namespaces it may not get.
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            yield browser
        finally:
            await browser.close()
