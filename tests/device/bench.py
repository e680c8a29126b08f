"""A loopback test bed for device agents: a private Mosquitto, a simulated world with one
target network, agents served over real HTTP on 127.0.0.x, and a sleep that never sleeps."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiomqtt
import httpx
import msgspec

from orchestrator.device.agent import DeviceAgent
from orchestrator.device.faults import FaultProfile
from orchestrator.device.http import DeviceApi, listen, serving
from orchestrator.device.lifecycle import Phase
from orchestrator.device.network import SimulatedNetworks, TargetNetwork
from orchestrator.device.settings import AgentTiming, DeviceIdentity
from orchestrator.protocol.messages import Credentials, MqttCredentials
from orchestrator.protocol.status import StatusMessage, decode_status, status_topic
from orchestrator.sim.broker import Broker, mosquitto

SSID = "Factory-5G"
PASSWORD = "correct-horse-battery"
NONCE = "nonce-aaaaaaaaaaaaaaaa"
WAIT_S = 5.0


class Sleeps:
    """The injected sleep: records every delay, returns at once unless a test holds that
    delay, in which case it waits until released."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self._gates: dict[float, asyncio.Event] = {}
        self._reached: dict[float, asyncio.Event] = {}

    def hold(self, seconds: float) -> None:
        """Make sleeps of exactly `seconds` wait for `release`."""
        self._gates[seconds] = asyncio.Event()
        self._reached[seconds] = asyncio.Event()

    async def reached(self, seconds: float) -> None:
        """Wait until someone sleeps `seconds` (held)."""
        async with asyncio.timeout(WAIT_S):
            await self._reached[seconds].wait()

    def release(self, seconds: float) -> None:
        """Let held sleeps of `seconds` end, now and from now on."""
        self._gates.pop(seconds).set()

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        gate = self._gates.get(seconds)
        if gate is None:
            await asyncio.sleep(0)
            return
        self._reached[seconds].set()
        await gate.wait()


@dataclass
class Device:
    """An agent under test, its API base URL and every phase it moved to."""

    agent: DeviceAgent
    url: str
    phases: list[Phase] = field(default_factory=list)

    @property
    def mac(self) -> str:
        return self.agent.identity.mac

    async def until(self, phase: Phase) -> None:
        """Wait until the agent is in `phase`."""
        async with asyncio.timeout(WAIT_S), contextlib.aclosing(self.agent.watch()) as phases:
            async for now in phases:
                if now is phase:
                    return


@dataclass
class Bench:
    """Everything a device test drives or observes."""

    broker: Broker
    world: SimulatedNetworks
    sleeps: Sleeps
    http: httpx.AsyncClient
    group: asyncio.TaskGroup
    api: DeviceApi
    free: list[tuple[str, int]]
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def device(
        self, n: int = 1, *, fault: FaultProfile = FaultProfile.NONE, **timing: float
    ) -> Device:
        """Start agent number `n` (MAC 02:00:00:00:00:nn) on the next free address; `timing`
        overrides AgentTiming fields (the delays only reach the recording sleep)."""
        mac = f"02:00:00:00:00:{n:02X}"
        host, port = self.free.pop(0)
        phases: list[Phase] = []
        agent = DeviceAgent(
            DeviceIdentity(mac=mac, firmware_version="2.4.1", rssi=-61),
            self.world.switch(mac),
            fault=fault,
            timing=msgspec.structs.replace(AgentTiming(connect_timeout_s=WAIT_S), **timing),
            sleep=self.sleeps,
            on_change=phases.append,
        )
        self.api.mount((host, port), agent)
        self.tasks.append(self.group.create_task(agent.run()))
        return Device(agent, f"http://{host}:{port}", phases)

    def credentials(self, n: int = 1, **changes: str) -> Credentials:
        """Valid credentials for device `n` on the bench's network and broker."""
        fields = {
            "target_ssid": SSID,
            "target_password": PASSWORD,
            "device_name": f"cam-{n}",
            "nonce": NONCE,
            "broker_url": self.broker.url,
            "topic_prefix": f"fleet/dev{n}",
            **changes,
        }
        return Credentials(
            target_ssid=fields["target_ssid"],
            target_password=fields["target_password"],
            device_name=fields["device_name"],
            nonce=fields["nonce"],
            mqtt=MqttCredentials(
                broker_url=fields["broker_url"],
                username=f"dev{n}",
                password="mqtt-secret",
                topic_prefix=fields["topic_prefix"],
            ),
        )


@contextlib.asynccontextmanager
async def bench(addresses: int = 2) -> AsyncIterator[Bench]:
    """A bench with `addresses` listening sockets (127.0.0.2, .3, ...) to mount agents on."""
    sockets = [listen(f"127.0.0.{2 + i}") for i in range(addresses)]
    free = [sock.getsockname()[:2] for sock in sockets]
    sleeps = Sleeps()
    api = DeviceApi(sleep=sleeps)
    async with (
        mosquitto() as broker,
        serving(api, sockets),
        httpx.AsyncClient(timeout=WAIT_S) as http,
        asyncio.TaskGroup() as group,
    ):
        world = SimulatedNetworks([TargetNetwork(ssid=SSID, password=PASSWORD)])
        bed = Bench(broker, world, sleeps, http, group, api, free)
        try:
            yield bed
        finally:
            for task in bed.tasks:
                task.cancel()


@dataclass(frozen=True)
class Received:
    """One status message as a subscriber saw it."""

    message: StatusMessage
    retained: bool


class StatusWatch:
    """A subscriber on one device's status topic."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self._messages = aiter(client.messages)

    async def next(self) -> Received:
        async with asyncio.timeout(WAIT_S):
            message = await anext(self._messages)
        assert isinstance(message.payload, bytes)
        return Received(decode_status(message.payload), bool(message.retain))

    async def take(self, count: int) -> list[Received]:
        return [await self.next() for _ in range(count)]


@contextlib.asynccontextmanager
async def watch_status(broker: Broker, prefix: str) -> AsyncIterator[StatusWatch]:
    """Subscribe to `<prefix>/status` for the block."""
    async with aiomqtt.Client(broker.host, broker.port, timeout=WAIT_S) as client:
        await client.subscribe(status_topic(prefix), qos=1)
        yield StatusWatch(client)
