"""The simulated fleet on the namespace tier: every device runs in its own network namespace
of a TestBed, with a real DHCP lease, its HTTP API and mDNS on its onboarding address, and
its MQTT traffic leaving from its own namespace once it has switched to the target side.

Each device gets a private event loop in a thread that lives in its namespace (sockets are
created in the namespace of the thread that makes them, and the libraries make their own).
Moving a device between networks is the bed's work, done on the bed's own loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from orchestrator.device.agent import DeviceAgent
from orchestrator.device.errors import JoinError
from orchestrator.device.faults import FaultProfile, assign_faults
from orchestrator.device.http import DeviceApi, listen, serving
from orchestrator.device.mdns import DeviceAdvertiser
from orchestrator.device.network import Attachment
from orchestrator.device.settings import AgentTiming, DeviceIdentity
from orchestrator.protocol.messages import FailureReason
from orchestrator.sim.fleet import FAMILIES, FleetSpec, advertise_while_onboarding
from orchestrator.sim.setns import run_loop_in_namespace
from orchestrator.sim.testbed import DeviceHost, Side, TestBed

T = TypeVar("T")
DEVICE_API_PORT = 80
"""Where a real device serves its API on the onboarding network."""


@dataclass(frozen=True, slots=True)
class NetnsDevice:
    """One device: its host in the bed and its agent (which lives on the device's loop)."""

    host: DeviceHost
    agent: DeviceAgent
    fault: FaultProfile

    @property
    def ip(self) -> str:
        """Its onboarding address."""
        return str(self.host.onboarding_ip)


@dataclass(frozen=True, slots=True)
class NetnsFleet:
    """A running namespace-tier fleet."""

    bed: TestBed
    devices: list[NetnsDevice]
    service_type: str
    spec: FleetSpec


class BedSwitch:
    """NetworkSwitch of one bed device. Runs on the device's loop; the bed's work is handed to
    the bed's loop. The target side is one access point with the spec's SSID and password."""

    def __init__(
        self, bed: TestBed, host: DeviceHost, home: asyncio.AbstractEventLoop, spec: FleetSpec
    ) -> None:
        self._bed = bed
        self._host = host
        self._home = home
        self._spec = spec

    async def _at_home(self, work: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self._home))

    async def leave_onboarding(self) -> None:
        """Nothing to do yet: the link moves only once the target network accepts us."""

    async def join_target(self, ssid: str, password: str) -> Attachment:
        """Associate with the bed's target network (the checks its access point would make)."""
        if ssid != self._spec.target_ssid:
            raise JoinError(FailureReason.NETWORK_NOT_FOUND, f"no access point {ssid!r} in range")
        if password != self._spec.target_password:
            raise JoinError(FailureReason.AUTH_ERROR, f"{ssid!r} refused the password")
        await self._at_home(self._bed.switch_to_target(self._host))
        broker = self._bed.broker
        return Attachment(
            ssid=ssid, ip=str(self._host.target_ip), broker=(broker.host, broker.port)
        )

    async def return_to_onboarding(self) -> None:
        """Back to the onboarding bridge, with a fresh DHCP lease (the same address)."""
        if self._bed.side(self._host) is Side.TARGET:
            self._host = await self._at_home(self._bed.switch_to_onboarding(self._host))


@contextlib.asynccontextmanager
async def netns_fleet(
    spec: FleetSpec,
    *,
    service_type: str,
    timing: AgentTiming | None = None,
    profiles: Sequence[FaultProfile] | None = None,
    dhcp_script: Path | None = None,
    broker_admin: tuple[str, str] | None = None,
) -> AsyncIterator[NetnsFleet]:
    """Build a bed of `spec.devices` devices and run an agent in each namespace until the
    block ends; the bed then takes everything down. `profiles` gives device i the fault
    `profiles[i]` (the bed chooses MACs, so tests name devices by index); `dhcp_script` goes
    to dnsmasq as `--dhcp-script`; `broker_admin` (username, password) puts the broker under
    dynamic security with that admin."""
    async with TestBed.build(
        devices=spec.devices, dhcp_script=dhcp_script, broker_admin=broker_admin
    ) as bed:
        home = asyncio.get_running_loop()
        hosts = list(bed.devices)
        if profiles is not None:
            faults = {h.mac: profiles[h.index] for h in hosts}
        else:
            faults = assign_faults([h.mac for h in hosts], spec.faults, spec.seed)
        rng = random.Random(spec.seed)  # noqa: S311 - reproducible test data
        devices: list[NetnsDevice] = []
        ready: list[asyncio.Future[None]] = []
        async with asyncio.TaskGroup() as group:
            running = []
            for host in hosts:
                family, model = FAMILIES[host.index % len(FAMILIES)]
                identity = DeviceIdentity(
                    mac=host.mac, family=family, model=model, firmware_version="1.4.2",
                    rssi=-rng.randint(35, 80),
                )  # fmt: skip
                agent = DeviceAgent(
                    identity, BedSwitch(bed, host, home, spec), fault=faults[host.mac],
                    timing=timing,
                )  # fmt: skip
                listening: asyncio.Future[None] = home.create_future()
                ready.append(listening)
                devices.append(NetnsDevice(host=host, agent=agent, fault=faults[host.mac]))
                main = functools.partial(_device_main, host, agent, service_type, home, listening)
                running.append(group.create_task(run_loop_in_namespace(host.namespace, main)))
            try:
                async with asyncio.timeout(30):
                    await asyncio.gather(*ready)
                yield NetnsFleet(bed=bed, devices=devices, service_type=service_type, spec=spec)
            finally:
                for task in running:
                    task.cancel()


async def _device_main(
    host: DeviceHost,
    agent: DeviceAgent,
    service_type: str,
    home: asyncio.AbstractEventLoop,
    listening: asyncio.Future[None],
) -> None:
    """A device's life on its own loop, inside its namespace."""
    sock = listen(str(host.onboarding_ip), DEVICE_API_PORT)
    api = DeviceApi()
    api.mount(sock.getsockname(), agent)
    try:
        async with (
            DeviceAdvertiser.start(
                addresses=[str(host.onboarding_ip)], service_type=service_type
            ) as advertiser,
            serving(api, [sock]),
            asyncio.TaskGroup() as group,
        ):
            home.call_soon_threadsafe(_resolve, listening)
            group.create_task(agent.run())
            address = str(host.onboarding_ip)
            group.create_task(
                advertise_while_onboarding(agent, advertiser, address, DEVICE_API_PORT)
            )
    finally:
        sock.close()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
