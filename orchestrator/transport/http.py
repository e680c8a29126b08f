"""The device protocol's HTTP API (`/v1`, orchestrator.protocol.messages) as a client.

One connection pool for every device; each request is bounded by a short timeout, because a
device that does not answer within seconds on the onboarding network is not going to.

aiohttp rather than httpx (which the API client uses): every device is a new host, so each
request is a new connection, and there aiohttp costs a third of httpx's CPU (0.42 against
1.2 ms per request on the build machine, docs/benchmarks.md); it also takes an IP literal
without a trip through the resolver's thread pool.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from http import HTTPStatus
from types import SimpleNamespace
from typing import TypeVar

import aiohttp
import msgspec

from orchestrator.ports.devices import (
    DeviceRejectedError,
    DeviceTimeoutError,
    DeviceUnreachableError,
)
from orchestrator.protocol.messages import (
    CREDENTIALS_PATH,
    INFO_PATH,
    MAX_REQUEST_BYTES,
    PAIRING_PATH,
    Acknowledged,
    Credentials,
    DeliveryReceipt,
    DeviceInfo,
    ErrorAnswer,
    PairingDisplay,
    SecurityScheme,
)

DEVICE_API_PORT = 80
"""Where devices serve their API (a different port only for simulated fleets)."""

S = TypeVar("S", bound=msgspec.Struct)


class DeviceHttpClient:
    """DeviceClient over HTTP/1.1. Use as an async context manager (`open()`)."""

    def __init__(self, session: aiohttp.ClientSession, *, port: int = DEVICE_API_PORT) -> None:
        self._session = session
        self._port = port

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, *, port: int = DEVICE_API_PORT, timeout_s: float = 3.0, max_connections: int = 32
    ) -> AsyncIterator[DeviceHttpClient]:
        """A client whose pool is closed when the block ends."""
        # force_close: a device serves one request per connection, and keeping it would only
        # hold a socket to a device that is about to leave the network.
        connector = aiohttp.TCPConnector(limit=max_connections, force_close=True)
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        # trust_env off: a proxy configured for the uplink must never see onboarding traffic.
        async with aiohttp.ClientSession(
            connector=connector, timeout=timeout, trust_env=False, trace_configs=[_SENT]
        ) as session:
            yield cls(session, port=port)

    async def info(self, ip: str) -> DeviceInfo:
        """GET /v1/info."""
        return await self._request("GET", ip, INFO_PATH, DeviceInfo)

    async def show_pairing(self, ip: str, display: PairingDisplay) -> None:
        """POST /v1/pairing."""
        await self._request("POST", ip, PAIRING_PATH, Acknowledged, msgspec.json.encode(display))

    async def deliver(
        self, ip: str, credentials: Credentials, scheme: SecurityScheme = SecurityScheme.PLAIN
    ) -> DeliveryReceipt:
        """POST /v1/credentials (the plain scheme: JSON over the WPA2 onboarding network)."""
        if scheme is not SecurityScheme.PLAIN:
            raise DeviceRejectedError(
                f"this transport delivers over plain only, not {scheme}",
                code="unsupported_scheme",
                status=0,
            )
        body = msgspec.json.encode(credentials)
        return await self._request("POST", ip, CREDENTIALS_PATH, DeliveryReceipt, body)

    async def _request(
        self, method: str, ip: str, path: str, answer: type[S], body: bytes | None = None
    ) -> S:
        if body is not None and len(body) > MAX_REQUEST_BYTES:
            raise ValueError(f"{path} request of {len(body)} bytes is over {MAX_REQUEST_BYTES}")
        url = f"http://{ip}:{self._port}{path}"
        headers = {"content-type": "application/json"} if body is not None else None
        progress = _Progress()
        try:
            async with self._session.request(
                method, url, data=body, headers=headers, trace_request_ctx=progress
            ) as reply:
                status, content = reply.status, await reply.read()
        except TimeoutError as error:
            if not progress.sent:
                message = f"{method} {path} to {ip}: no connection in time"
                raise DeviceUnreachableError(message) from error
            # Sent (at least in part): the device may have acted on it.
            raise DeviceTimeoutError(f"{method} {path} to {ip}: no answer in time") from error
        except (aiohttp.ClientError, OSError) as error:
            raise DeviceUnreachableError(f"{method} {path} to {ip}: {_describe(error)}") from error
        if status >= HTTPStatus.BAD_REQUEST:
            raise _rejected(method, path, ip, status, content)
        try:
            return msgspec.json.decode(content, type=answer)
        except msgspec.DecodeError as error:
            raise DeviceUnreachableError(f"{method} {path} to {ip}: bad answer: {error}") from error


class _Progress:
    """How far one request got: whether any of it reached the device's socket."""

    sent = False


async def _headers_sent(
    _: aiohttp.ClientSession,
    context: SimpleNamespace,
    __: aiohttp.TraceRequestHeadersSentParams,
) -> None:
    progress = context.trace_request_ctx
    if isinstance(progress, _Progress):
        progress.sent = True


_SENT = aiohttp.TraceConfig()
"""Marks a request sent once its headers are written: a timeout before that cannot have
reached the device, one after may have."""
_SENT.on_request_headers_sent.append(_headers_sent)
_SENT.freeze()


def _rejected(method: str, path: str, ip: str, status: int, content: bytes) -> DeviceRejectedError:
    """The device's error answer; its own words when it used the protocol's error shape."""
    try:
        answer = msgspec.json.decode(content, type=ErrorAnswer)
    except msgspec.DecodeError:
        return DeviceRejectedError(
            f"{method} {path} to {ip} answered {status}", code=str(status), status=status
        )
    return DeviceRejectedError(
        f"{method} {path} to {ip} answered {status} {answer.error.code}: "
        f"{answer.error.message[:200]}",
        code=answer.error.code,
        status=status,
    )


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
