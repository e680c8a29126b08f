"""ThingsBoard's MQTT transport as a device sees it; the cloud package's only aiomqtt user.

Three uses: a `provision` session (subscribe to the answer topic, then publish the request,
then disconnect as soon as the answer is in: the server would hold the connection 60 s), one
CONNECT with an access token as username to learn whether a device holds it (CONNACK 0: yes,
5 or 4: no), and the device's own connection for telemetry. Every aiomqtt error becomes a
CloudError here; each code tells whether the request may have gone out (`flow` needs that).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiomqtt
import msgspec

from orchestrator.device.cloud.credentials import DeviceCredentials
from orchestrator.device.cloud.errors import CloudError, ErrorCode
from orchestrator.device.cloud.flow import Verdict
from orchestrator.device.cloud.messages import (
    PROVISION_USERNAME,
    REQUEST_TOPIC,
    RESPONSE_TOPIC,
    TELEMETRY_TOPIC,
    ProvisionRequest,
    encode_request,
)
from orchestrator.device.cloud.settings import Server

log = logging.getLogger(__name__)

QOS = 1
MAX_QUEUED_INCOMING = 4
"""Only one answer ever comes; the queue is bounded all the same."""
CONNECT_GRACE_S = 1.0
DEVICE_KEEPALIVE_S = 60
SERVER_UNAVAILABLE = 3
# CONNACK 4 (bad user name or password) and 5 (not authorised), and the MQTT 5 reason codes
# paho reports them as (134, 135) even for 3.1.1 sessions.
REFUSED_TOKEN = frozenset({4, 5, 134, 135})
_UNAVAILABLE = frozenset({SERVER_UNAVAILABLE, 136})
_ENCODER = msgspec.json.Encoder()


class ProvisionSession:
    """An open `provision` session, subscribed to its answer topic."""

    def __init__(self, client: aiomqtt.Client, where: str, timeout_s: float) -> None:
        self._client = client
        self._where = where
        self._timeout_s = timeout_s

    async def send(self, request: ProvisionRequest) -> None:
        """Publish `request` on /provision/request (QoS 1)."""
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._client.publish(REQUEST_TOPIC, encode_request(request), qos=QOS)
        except TimeoutError as exc:
            raise CloudError(
                ErrorCode.NO_ANSWER,
                f"{self._where} did not acknowledge the request in {self._timeout_s:g} s",
            ) from exc
        except aiomqtt.MqttError as exc:
            raise CloudError(
                ErrorCode.CONNECTION_LOST, f"{self._where} dropped the request: {exc}"
            ) from exc

    async def answer(self) -> bytes:
        """The first message on /provision/response."""
        try:
            async with asyncio.timeout(self._timeout_s):
                async for message in self._client.messages:
                    if message.topic.matches(RESPONSE_TOPIC):
                        return _payload_bytes(message.payload)
        except TimeoutError as exc:
            raise CloudError(
                ErrorCode.NO_ANSWER, f"{self._where} sent no answer in {self._timeout_s:g} s"
            ) from exc
        except aiomqtt.MqttError as exc:
            raise CloudError(
                ErrorCode.CONNECTION_LOST,
                f"{self._where} closed the connection before answering: {exc}",
            ) from exc
        raise CloudError(
            ErrorCode.CONNECTION_LOST, f"{self._where} closed the connection before answering"
        )


@contextlib.asynccontextmanager
async def provision_session(
    server: Server, *, client_id: str, timeout_s: float
) -> AsyncIterator[ProvisionSession]:
    """Connect as `provision` and subscribe to /provision/response (before any request can be
    published, so the answer cannot be missed); disconnect on the way out."""
    where = _where(server)
    client = _client(server, username=PROVISION_USERNAME, client_id=client_id, timeout_s=timeout_s)
    try:
        async with _connection(client, where, timeout_s):
            try:
                async with asyncio.timeout(timeout_s):
                    granted = await client.subscribe(RESPONSE_TOPIC, qos=QOS)
            except (aiomqtt.MqttError, TimeoutError) as exc:
                raise CloudError(
                    ErrorCode.SERVER_UNREACHABLE,
                    f"{where} did not take the subscription to {RESPONSE_TOPIC}: {_reason(exc)}",
                ) from exc
            if any(_granted_code(g) >= 0x80 for g in granted):
                raise CloudError(
                    ErrorCode.SESSION_REFUSED,
                    f"{where} refused the subscription to {RESPONSE_TOPIC}: is it ThingsBoard?",
                )
            yield ProvisionSession(client, where, timeout_s)
    except _RefusedError as exc:
        raise CloudError(
            ErrorCode.SESSION_REFUSED,
            f"{where} refused the provisioning session ({exc}): is it the MQTT port of a "
            "ThingsBoard server (server_url, server_port in provision.json)?",
        ) from exc


async def check_token(server: Server, token: str, *, client_id: str, timeout_s: float) -> Verdict:
    """Whether a device holds `token`: one CONNECT with it as user name."""
    client = _client(server, username=token, client_id=client_id, timeout_s=timeout_s)
    try:
        async with _connection(client, _where(server), timeout_s):
            pass
    except _RefusedError as exc:
        if exc.code in REFUSED_TOKEN:
            return Verdict.REFUSED
        raise CloudError(ErrorCode.SERVER_UNREACHABLE, f"{_where(server)}: {exc}") from exc
    return Verdict.ACCEPTED


class DeviceLink:
    """The device's own connection to ThingsBoard."""

    def __init__(self, client: aiomqtt.Client, timeout_s: float) -> None:
        self._client = client
        self._timeout_s = timeout_s

    async def publish_telemetry(self, values: Mapping[str, Any]) -> None:
        """Publish `values` on v1/devices/me/telemetry (QoS 1)."""
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._client.publish(TELEMETRY_TOPIC, _ENCODER.encode(values), qos=QOS)
        except (aiomqtt.MqttError, TimeoutError) as exc:
            raise CloudError(
                ErrorCode.CONNECTION_LOST, f"publishing telemetry failed: {_reason(exc)}"
            ) from exc


@contextlib.asynccontextmanager
async def device_link(
    credentials: DeviceCredentials, *, timeout_s: float = 10.0
) -> AsyncIterator[DeviceLink]:
    """Connect with the device's access token (the stored credentials)."""
    server = credentials.server
    where = _where(server)
    client = _client(
        server,
        username=credentials.access_token,
        client_id=credentials.device_name,
        timeout_s=timeout_s,
        keepalive_s=DEVICE_KEEPALIVE_S,
    )
    try:
        async with _connection(client, where, timeout_s):
            yield DeviceLink(client, timeout_s)
    except _RefusedError as exc:
        if exc.code in REFUSED_TOKEN:
            raise CloudError(
                ErrorCode.STORED_TOKEN_REFUSED,
                f"{where} refuses the access token of {credentials.device_name!r}: "
                "provision the device again (provision.txt)",
            ) from exc
        raise CloudError(ErrorCode.SERVER_UNREACHABLE, f"{where}: {exc}") from exc


class _RefusedError(Exception):
    """A CONNACK refusal, before the caller says what it means."""

    def __init__(self, exc: aiomqtt.MqttCodeError) -> None:
        super().__init__(str(exc))
        rc = exc.rc
        self.code = rc if isinstance(rc, int) or rc is None else rc.value


@contextlib.asynccontextmanager
async def _connection(
    client: aiomqtt.Client, where: str, timeout_s: float
) -> AsyncIterator[aiomqtt.Client]:
    """`client`, connected; a refusal raises _RefusedError (server unavailable: CloudError),
    and a failed goodbye is ignored: the server may close first once it has answered."""
    stack = contextlib.AsyncExitStack()
    try:
        # aiomqtt's own timeout (timeout_s) must fire first: it resets the client cleanly,
        # where a cancellation mid-connect leaves paho's callbacks on a cancelled future.
        async with asyncio.timeout(timeout_s + CONNECT_GRACE_S):
            await stack.enter_async_context(client)
    except aiomqtt.MqttCodeError as exc:
        refused = _RefusedError(exc)
        if refused.code in _UNAVAILABLE:
            raise CloudError(ErrorCode.SERVER_UNREACHABLE, f"{where}: {exc}") from exc
        raise refused from exc
    except (aiomqtt.MqttError, TimeoutError, OSError) as exc:
        raise CloudError(
            ErrorCode.SERVER_UNREACHABLE, f"cannot reach {where}: {_reason(exc)}"
        ) from exc
    try:
        yield client
    finally:
        try:
            async with asyncio.timeout(timeout_s):
                await stack.aclose()
        except (aiomqtt.MqttError, TimeoutError) as exc:
            log.debug("disconnecting from %s failed: %s", where, _reason(exc))


def _client(
    server: Server,
    *,
    username: str,
    client_id: str,
    timeout_s: float,
    keepalive_s: int | None = None,
) -> aiomqtt.Client:
    # A server that never answers CONNECT leaves paho's socket open after the timeout until
    # its keepalive check closes it: short sessions keep that short.
    keepalive = keepalive_s if keepalive_s is not None else max(1, math.ceil(timeout_s))
    return aiomqtt.Client(
        server.host,
        server.port,
        username=username,
        identifier=client_id,
        timeout=timeout_s,
        keepalive=keepalive,
        tls_context=ssl.create_default_context() if server.use_ssl else None,
        max_queued_incoming_messages=MAX_QUEUED_INCOMING,
    )


def _granted_code(granted: object) -> int:
    if isinstance(granted, int):
        return granted
    value = getattr(granted, "value", 0)
    return value if isinstance(value, int) else 0


def _payload_bytes(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return str(payload).encode()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def _where(server: Server) -> str:
    return f"{'mqtts' if server.use_ssl else 'mqtt'}://{server.host}:{server.port}"
