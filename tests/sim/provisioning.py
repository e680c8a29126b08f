"""What the orchestrator will do to a simulated device, done by hand in tests: build its
credentials, deliver them over HTTP, read its first status from the broker."""

from __future__ import annotations

import asyncio

import aiomqtt
import httpx
import msgspec

from orchestrator.protocol.messages import CREDENTIALS_PATH, Credentials, MqttCredentials
from orchestrator.protocol.status import StatusMessage, decode_status
from orchestrator.sim.fleet import FleetSpec

WAIT_S = 20.0


def token(mac: str) -> str:
    """The MAC as a topic and nonce fragment (`02dc...`)."""
    return mac.replace(":", "").lower()


def topic_prefix(mac: str) -> str:
    """The status topic prefix the tests hand device `mac`."""
    return f"delicasa/{token(mac)}"


def nonce(mac: str) -> str:
    """The nonce the tests issue to device `mac`."""
    return f"nonce-{token(mac)}"


def credentials(spec: FleetSpec, broker_url: str, mac: str) -> bytes:
    """Credentials for the fleet's target network and broker, as JSON."""
    return msgspec.json.encode(
        Credentials(
            target_ssid=spec.target_ssid,
            target_password=spec.target_password,
            mqtt=MqttCredentials(
                broker_url=broker_url,
                username="dev",
                password="dev-pass",
                topic_prefix=topic_prefix(mac),
            ),
            device_name=f"cam-{token(mac)[-4:]}",
            nonce=nonce(mac),
        )
    )


async def deliver(client: httpx.AsyncClient, address: str, body: bytes) -> httpx.Response:
    """POST credentials to the device API at `address` (`host:port`)."""
    return await client.post(
        f"http://{address}{CREDENTIALS_PATH}",
        content=body,
        headers={"content-type": "application/json"},
    )


async def next_status(mqtt: aiomqtt.Client) -> StatusMessage:
    """The next status message on the subscribed topics."""
    async with asyncio.timeout(WAIT_S):
        message = await anext(aiter(mqtt.messages))
    assert isinstance(message.payload, bytes)
    return decode_status(message.payload)
