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

from orchestrator.ports.devices import DeviceUnreachableError
from orchestrator.protocol.messages import (
    INFO_PATH,
    MAX_REQUEST_BYTES,
    PAIRING_PATH,
    Acknowledged,
    DeviceInfo,
    PairingDisplay,
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

    async def _request(
        self, method: str, ip: str, path: str, answer: type[S], body: bytes | None = None
    ) -> S:
        if body is not None and len(body) > MAX_REQUEST_BYTES:
            raise ValueError(f"{path} request of {len(body)} bytes is over {MAX_REQUEST_BYTES}")
        url = f"http://{ip}:{self._port}{path}"
        headers = {"content-type": "application/json"} if body is not None else None
        try:
            response = await self._client.request(method, url, content=body, headers=headers)
        except httpx.HTTPError as error:
            raise DeviceUnreachableError(f"{method} {path} to {ip}: {_describe(error)}") from error
        if response.is_error:
            raise DeviceUnreachableError(
                f"{method} {path} to {ip} answered {response.status_code}: {response.text[:200]}"
            )
        try:
            return msgspec.json.decode(response.content, type=answer)
        except msgspec.ValidationError as error:
            raise DeviceUnreachableError(f"{method} {path} to {ip}: bad answer: {error}") from error


def _describe(error: httpx.HTTPError) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
