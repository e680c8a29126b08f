"""The device's MQTT link on the target network: the only module of the agent that imports
aiomqtt. It connects with a retained Offline last-will, publishes status retained at QoS 1,
and turns aiomqtt's errors into BrokerUnreachableError."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from types import MappingProxyType
from urllib.parse import urlsplit

import aiomqtt

from orchestrator.device.errors import BrokerUnreachableError
from orchestrator.protocol.messages import MqttCredentials
from orchestrator.protocol.status import QOS, Offline, StatusMessage, encode_status, status_topic

DEFAULT_PORTS: Mapping[str, int] = MappingProxyType({"mqtt": 1883, "mqtts": 8883})
KEEPALIVE_S = 30
# We subscribe to nothing, but aiomqtt's incoming queue is unbounded unless told otherwise.
MAX_QUEUED_INCOMING = 16


def client_id(mac: str) -> str:
    """The MQTT client id of device `mac`; stable, so a reconnect takes its old session over."""
    return "dev-" + mac.replace(":", "").lower()


def broker_address(url: str) -> tuple[str, int]:
    """Host and port of `mqtt://host[:port]` or `mqtts://host[:port]`."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise BrokerUnreachableError(f"not an MQTT broker URL: {url!r}")
    return parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme]


class StatusLink:
    """An open connection of one device, able to publish on its own status topic."""

    def __init__(
        self, client: aiomqtt.Client, topic: str, kicker: Callable[[], aiomqtt.Client]
    ) -> None:
        self._client = client
        self._kicker = kicker
        self.topic = topic

    async def publish(self, message: StatusMessage) -> None:
        """Publish `message` retained at QoS 1 on the status topic."""
        try:
            await self._client.publish(self.topic, encode_status(message), qos=QOS, retain=True)
        except aiomqtt.MqttError as exc:
            raise BrokerUnreachableError(f"publishing on {self.topic} failed: {exc}") from exc

    async def wait_closed(self) -> None:
        """Return when the broker drops the connection (the device holds it until then)."""
        with contextlib.suppress(aiomqtt.MqttError):
            async for _ in self._client.messages:
                pass

    async def drop(self, timeout_s: float) -> None:
        """Lose the connection without a DISCONNECT, as a crash or radio loss does, so the
        broker publishes the will.

        aiomqtt always disconnects cleanly, so the session is taken over instead: a second
        connection with the same client id makes the broker close this one as gone (MQTT
        3.1.1 section 3.1.4), which fires the will, just as when a rebooted device
        reconnects before its keepalive expires.
        """
        try:
            async with asyncio.timeout(timeout_s):
                async with self._kicker():
                    pass
                await self.wait_closed()
        except (aiomqtt.MqttError, TimeoutError) as exc:
            raise BrokerUnreachableError(f"could not drop the connection: {exc!r}") from exc


@contextlib.asynccontextmanager
async def status_link(
    mqtt: MqttCredentials,
    *,
    mac: str,
    address: tuple[str, int] | None = None,
    timeout_s: float = 10.0,
) -> AsyncIterator[StatusLink]:
    """Connect as device `mac` with the delivered credentials and an Offline will; `address`
    overrides where the broker URL points (a simulated network's routing)."""
    host, port = address or broker_address(mqtt.broker_url)
    topic = status_topic(mqtt.topic_prefix)
    tls = ssl.create_default_context() if mqtt.broker_url.startswith("mqtts:") else None
    will = aiomqtt.Will(topic, encode_status(Offline(mac=mac)), qos=QOS, retain=True)

    def client(*, with_will: bool) -> aiomqtt.Client:
        return aiomqtt.Client(
            host,
            port,
            username=mqtt.username,
            password=mqtt.password,
            identifier=client_id(mac),
            will=will if with_will else None,
            timeout=timeout_s,
            keepalive=KEEPALIVE_S,
            tls_context=tls,
            max_queued_incoming_messages=MAX_QUEUED_INCOMING,
        )

    connection = client(with_will=True)
    stack = contextlib.AsyncExitStack()
    try:
        async with asyncio.timeout(timeout_s):
            await stack.enter_async_context(connection)
    except (aiomqtt.MqttError, TimeoutError) as exc:
        raise BrokerUnreachableError(f"cannot connect to {host}:{port}: {exc!r}") from exc
    try:
        yield StatusLink(connection, topic, functools.partial(client, with_will=False))
    finally:
        try:
            await stack.aclose()
        except aiomqtt.MqttError as exc:
            message = f"disconnecting from {host}:{port} failed: {exc!r}"
            raise BrokerUnreachableError(message) from exc
