"""The device protocol's HTTP API (`/v1`, orchestrator.protocol.messages) as a client.

One connection pool for every device; each request is bounded by a short timeout, because a
device that does not answer within seconds on the onboarding network is not going to.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TypeVar

import httpx
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

    def __init__(self, client: httpx.AsyncClient, *, port: int = DEVICE_API_PORT) -> None:
        self._client = client
        self._port = port

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, *, port: int = DEVICE_API_PORT, timeout_s: float = 3.0, max_connections: int = 32
    ) -> AsyncIterator[DeviceHttpClient]:
        """A client whose pool is closed when the block ends."""
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=0)
        # trust_env off: a proxy configured for the uplink must never see onboarding traffic.
        async with httpx.AsyncClient(timeout=timeout_s, limits=limits, trust_env=False) as client:
            yield cls(client, port=port)

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
        try:
            response = await self._client.request(method, url, content=body, headers=headers)
        except (httpx.ReadTimeout, httpx.WriteTimeout) as error:
            # Sent (at least in part): the device may have acted on it.
            raise DeviceTimeoutError(f"{method} {path} to {ip}: no answer in time") from error
        except httpx.HTTPError as error:
            raise DeviceUnreachableError(f"{method} {path} to {ip}: {_describe(error)}") from error
        if response.is_error:
            raise _rejected(method, path, ip, response)
        try:
            return msgspec.json.decode(response.content, type=answer)
        except msgspec.ValidationError as error:
            raise DeviceUnreachableError(f"{method} {path} to {ip}: bad answer: {error}") from error


def _rejected(method: str, path: str, ip: str, response: httpx.Response) -> DeviceRejectedError:
    """The device's error answer; its own words when it used the protocol's error shape."""
    try:
        answer = msgspec.json.decode(response.content, type=ErrorAnswer)
    except msgspec.DecodeError:
        return DeviceRejectedError(
            f"{method} {path} to {ip} answered {response.status_code}",
            code=str(response.status_code),
            status=response.status_code,
        )
    return DeviceRejectedError(
        f"{method} {path} to {ip} answered {response.status_code} {answer.error.code}: "
        f"{answer.error.message[:200]}",
        code=answer.error.code,
        status=response.status_code,
    )


def _describe(error: httpx.HTTPError) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
