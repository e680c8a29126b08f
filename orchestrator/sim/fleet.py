"""A simulated fleet on the loopback tier: N reference device agents in one process, each on
its own loopback address, one HTTP server for all of them, mDNS on loopback under a service
type of the run's own, and a private Mosquitto standing for the target network's broker.

No privileges are needed. The namespace tier (orchestrator.sim.testbed) puts the same agents
on a real emulated network instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import msgspec

from orchestrator.device.agent import DeviceAgent
from orchestrator.device.faults import FaultProfile, assign_faults
from orchestrator.device.http import DeviceApi, listen, serving
from orchestrator.device.mdns import DeviceAdvertiser
from orchestrator.device.network import SimulatedNetworks, TargetNetwork
from orchestrator.device.settings import AgentTiming, DeviceIdentity, Sleep
from orchestrator.sim.broker import Broker, mosquitto

FAMILIES = (("esp32-cam", "esp32-cam-ov2640"), ("thermal-camera", "tc-160"))
MAX_DEVICES = 60_000
"""127.77.0.0/16 holds this many device addresses."""


class FleetSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What to simulate."""

    devices: int
    target_ssid: str = "DelicasaFactory"
    target_password: str = "factory-wifi-pass"  # noqa: S105 - the simulated network's own
    faults: Mapping[FaultProfile, float] = msgspec.field(default_factory=dict)
    """Share of the fleet per fault profile, e.g. {WRONG_PASSWORD: 0.1}."""
    overrides: Mapping[str, FaultProfile] = msgspec.field(default_factory=dict)
    """Faults of named devices (by MAC), applied before the shares."""
    seed: int = 0
    """Same seed, same MACs and the same faults."""
    service_type: str | None = None
    """mDNS service type; None picks one unique to this run (so runs never see each other)."""


@dataclass(frozen=True, slots=True)
class SimulatedDevice:
    """One device of the fleet and where to reach it."""

    agent: DeviceAgent
    ip: str
    port: int

    @property
    def mac(self) -> str:
        """The device's MAC."""
        return self.agent.identity.mac


@dataclass(frozen=True, slots=True)
class Fleet:
    """A running fleet."""

    devices: list[SimulatedDevice]
    broker: Broker
    service_type: str
    networks: SimulatedNetworks
    spec: FleetSpec


def fleet_macs(count: int, seed: int) -> list[str]:
    """Distinct, locally administered MACs (02:dc:...), the same for the same seed."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrecy
    picked = rng.sample(range(1 << 32), count)
    return [
        "02:DC:" + ":".join(f"{(n >> shift) & 0xFF:02X}" for shift in (24, 16, 8, 0))
        for n in picked
    ]


def device_address(index: int) -> str:
    """The loopback address of device `index` (127.77.0.0/16, skipping .0 and .255)."""
    return f"127.77.{index // 254}.{index % 254 + 1}"


def unique_service_type() -> str:
    """An mDNS service type of this run alone."""
    return f"_dc{secrets.token_hex(4)}._tcp.local."


@contextlib.asynccontextmanager
async def loopback_fleet(
    spec: FleetSpec,
    *,
    timing: AgentTiming | None = None,
    sleep: Sleep = asyncio.sleep,
    broker_admin: tuple[str, str] | None = None,
    device_port: int = 0,
) -> AsyncIterator[Fleet]:
    """Run the fleet of `spec` until the block ends; everything is stopped on the way out.
    With `broker_admin` (username, password) the broker runs dynamic security and admits
    only the accounts made through that admin; without, it is open to anyone. `device_port`
    puts every device's API on that port of its own address (as on real devices, where
    the orchestrator knows one port); 0 picks a free port per device."""
    if not 1 <= spec.devices <= MAX_DEVICES:
        raise ValueError(f"devices must be between 1 and {MAX_DEVICES}, got {spec.devices}")
    service_type = spec.service_type or unique_service_type()
    macs = fleet_macs(spec.devices, spec.seed)
    faults = assign_faults(macs, spec.faults, spec.seed, overrides=dict(spec.overrides))
    rng = random.Random(spec.seed)  # noqa: S311 - reproducible test data
    async with contextlib.AsyncExitStack() as stack:
        broker = await stack.enter_async_context(mosquitto(admin=broker_admin))
        world = SimulatedNetworks(
            [
                TargetNetwork(
                    spec.target_ssid,
                    spec.target_password,
                    broker=(broker.host, broker.port),
                    # Room for every device of the biggest fleet (a /24 holds 254).
                    subnet="10.42.0.0/16",
                )
            ]
        )
        api = DeviceApi(sleep=sleep)
        # Each device's files (a thermal camera's cloud configuration) under one directory.
        home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fleet-")))
        devices: list[SimulatedDevice] = []
        sockets = []
        for index, mac in enumerate(macs):
            family, model = FAMILIES[index % len(FAMILIES)]
            identity = DeviceIdentity(
                mac=mac, family=family, model=model, firmware_version="1.4.2",
                rssi=-rng.randint(35, 80),
            )  # fmt: skip
            agent = DeviceAgent(
                identity, world.switch(mac), fault=faults[mac], timing=timing, sleep=sleep,
                cloud_dir=home / mac.replace(":", "").lower(),
            )  # fmt: skip
            sock = stack.enter_context(
                contextlib.closing(listen(device_address(index), device_port))
            )
            host, port = sock.getsockname()
            api.mount((host, port), agent)
            sockets.append(sock)
            devices.append(SimulatedDevice(agent=agent, ip=host, port=port))
        advertiser = await stack.enter_async_context(
            DeviceAdvertiser.start(addresses=["127.0.0.1"], service_type=service_type)
        )
        await stack.enter_async_context(serving(api, sockets))
        tasks = await stack.enter_async_context(asyncio.TaskGroup())
        running = [tasks.create_task(d.agent.run()) for d in devices]
        running += [
            tasks.create_task(advertise_while_onboarding(d.agent, advertiser, d.ip, d.port))
            for d in devices
        ]
        try:
            yield Fleet(
                devices=devices,
                broker=broker,
                service_type=service_type,
                networks=world,
                spec=spec,
            )
        finally:
            for task in running:
                task.cancel()


async def advertise_while_onboarding(
    agent: DeviceAgent, advertiser: DeviceAdvertiser, ip: str, port: int
) -> None:
    """Advertise the device while it is on the onboarding network, withdraw it otherwise."""
    mac = agent.identity.mac
    async with contextlib.aclosing(agent.watch()) as phases:
        async for phase in phases:
            advertised = mac in advertiser
            if phase.on_onboarding and not advertised:
                await advertiser.register(agent.info(), ip, port)
            elif phase.on_onboarding:
                await advertiser.update(agent.info())
            elif advertised:
                await advertiser.unregister(mac)
