"""Two worlds the broker's ports can live in, driven through one harness: the in-memory fakes,
and a BrokerLink to a real Mosquitto with dynamic security on loopback.

A harness plays the devices as well: they connect and publish with their granted accounts,
and the harness tells what the broker let through.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Protocol

import aiomqtt
import msgspec
import pytest

from orchestrator.broker.link import BrokerLink
from orchestrator.broker.memory import MemoryAccounts, MemoryProofs
from orchestrator.broker.settings import (
    BrokerSettings,
    device_status_topic,
    device_topic_prefix,
    device_username,
)
from orchestrator.domain.mac import Mac
from orchestrator.ports.broker import DeviceAccount, DeviceAccounts, OnlineProofs
from orchestrator.protocol.status import Offline, Online, encode_status
from orchestrator.sim.broker import Broker, free_port, mosquitto

ADMIN = ("orchestrator", "admin-secret-pw")
WAIT_S = 5.0
MAC_A = Mac("02:DC:00:00:00:0A")
MAC_B = Mac("02:DC:00:00:00:0B")
MAC_C = Mac("02:DC:00:00:00:0C")


def link_settings(broker: Broker | None = None, **changes: object) -> BrokerSettings:
    """Settings for a link to `broker` (or to nothing), with test-sized timeouts."""
    settings = BrokerSettings(
        url=broker.url if broker else f"mqtt://127.0.0.1:{free_port()}",
        username=ADMIN[0],
        password=ADMIN[1],
        connect_timeout_s=2.0,
        command_timeout_s=2.0,
        reconnect_max_s=0.2,
    )
    return msgspec.structs.replace(settings, **changes)


def account(mac: Mac, password: str = "device-pw-1") -> DeviceAccount:  # noqa: S107
    """The account the engine would grant device `mac`."""
    username = device_username(mac)
    return DeviceAccount(
        username=username,
        password=password,
        client_id=username,
        status_topic=device_status_topic(BrokerSettings(), mac),
    )


def online(mac: Mac, nonce: str, ip: str = "10.0.0.5") -> Online:
    return Online(nonce=nonce, mac=mac, ip=ip, firmware_version="1.4.2", device_name="cam")


def topic_prefix(mac: Mac) -> str:
    return device_topic_prefix(BrokerSettings(), mac)


class Harness(Protocol):
    """One world: the ports, and the devices' side of the broker."""

    accounts: DeviceAccounts
    proofs: OnlineProofs

    async def can_connect(self, username: str, password: str, client_id: str) -> bool:
        """Whether the broker lets this connection in."""
        ...

    async def publish_as(self, device: DeviceAccount, payload: bytes, *, retain: bool) -> None:
        """The device publishes on its status topic at QoS 1 (silently dropped if refused)."""
        ...

    async def reaches_others(self, device: DeviceAccount, topic: str) -> bool:
        """Whether a message the device publishes on `topic` reaches a subscriber."""
        ...

    def restart(self) -> AbstractAsyncContextManager[None]:
        """The broker goes away and comes back (same accounts, retained messages lost); the
        block runs once it is back, maybe before the link is."""
        ...


class MemoryHarness:
    def __init__(self) -> None:
        self.memory_accounts = MemoryAccounts(admin=ADMIN[0])
        self.memory_proofs = MemoryProofs()
        self.accounts: DeviceAccounts = self.memory_accounts
        self.proofs: OnlineProofs = self.memory_proofs

    async def can_connect(self, username: str, password: str, client_id: str) -> bool:
        return self.memory_accounts.authenticate(username, password, client_id)

    async def publish_as(self, device: DeviceAccount, payload: bytes, *, retain: bool) -> None:
        if await self.reaches_others(device, device.status_topic):
            self.memory_proofs.publish(device.status_topic, payload, retain=retain)

    async def reaches_others(self, device: DeviceAccount, topic: str) -> bool:
        return await self.can_connect(
            device.username, device.password, device.client_id
        ) and self.memory_accounts.may_publish(device.username, topic)

    @contextlib.asynccontextmanager
    async def restart(self) -> AsyncIterator[None]:
        self.memory_proofs.disconnect()
        yield
        self.memory_proofs.reconnect()


class MosquittoHarness:
    def __init__(
        self, link: BrokerLink, brokers: contextlib.AsyncExitStack, start: Starter
    ) -> None:
        self.link = link
        self.accounts = link.accounts
        self.proofs = link.proofs
        self._brokers = brokers
        self._start = start

    @property
    def broker(self) -> Broker:
        return self._start.broker

    def client(self, username: str, password: str, client_id: str) -> aiomqtt.Client:
        return aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            username=username,
            password=password,
            identifier=client_id,
            timeout=WAIT_S,
        )

    async def can_connect(self, username: str, password: str, client_id: str) -> bool:
        try:
            async with asyncio.timeout(WAIT_S), self.client(username, password, client_id):
                return True
        except aiomqtt.MqttCodeError as exc:
            if "Not authorized" not in str(exc):
                raise
            return False

    async def publish_as(self, device: DeviceAccount, payload: bytes, *, retain: bool) -> None:
        async with (
            asyncio.timeout(WAIT_S),
            self.client(device.username, device.password, device.client_id) as client,
        ):
            await client.publish(device.status_topic, payload, qos=1, retain=retain)

    async def reaches_others(self, device: DeviceAccount, topic: str) -> bool:
        # The device publishes on `topic`, then a marker on its own status topic; QoS 1
        # messages of one client arrive in order, so once the marker is in, anything on
        # `topic` would have been too.
        marker = encode_status(Offline(mac="marker"))
        probe = b"probe"
        async with (
            asyncio.timeout(WAIT_S),
            self.client(*ADMIN, "observer") as observer,
            self.client(device.username, device.password, device.client_id) as sender,
        ):
            await observer.subscribe("#", qos=1)
            await sender.publish(topic, probe, qos=1)
            await sender.publish(device.status_topic, marker, qos=1)
            seen = False
            async for message in observer.messages:
                if message.retain:
                    continue
                seen = seen or (message.topic.value == topic and message.payload == probe)
                if message.topic.value == device.status_topic and message.payload == marker:
                    return seen
        raise AssertionError("unreachable: the marker always arrives")

    @contextlib.asynccontextmanager
    async def restart(self) -> AsyncIterator[None]:
        await self._brokers.aclose()
        await self._start(self._brokers)
        yield


class Starter:
    """Starts Mosquitto on one port with one dynamic security file, again and again."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.dynsec_file = workdir / "dynamic-security.json"
        self.broker = Broker(host="127.0.0.1", port=self.port, admin=ADMIN)

    async def __call__(self, stack: contextlib.AsyncExitStack) -> Broker:
        self.broker = await stack.enter_async_context(
            mosquitto(port=self.port, admin=ADMIN, dynsec_file=self.dynsec_file)
        )
        return self.broker


@contextlib.asynccontextmanager
async def mosquitto_harness(workdir: Path) -> AsyncIterator[MosquittoHarness]:
    """A dynsec Mosquitto and a BrokerLink to it; the harness can restart the broker."""
    start = Starter(workdir)
    brokers = contextlib.AsyncExitStack()
    try:
        broker = await start(brokers)
        async with BrokerLink.open(link_settings(broker)) as link:
            yield MosquittoHarness(link, brokers, start)
    finally:
        await brokers.aclose()


@contextlib.asynccontextmanager
async def memory_harness() -> AsyncIterator[MemoryHarness]:
    yield MemoryHarness()


HarnessFactory = Callable[[], AbstractAsyncContextManager[Harness]]


@pytest.fixture(params=["memory", "mosquitto"])
def make_harness(request: pytest.FixtureRequest, tmp_path: Path) -> HarnessFactory:
    """`async with make_harness() as world`: entered in the test's own task, because the
    broker's task group must be left in the task that entered it."""
    if request.param == "memory":
        return memory_harness
    return lambda: mosquitto_harness(tmp_path)
