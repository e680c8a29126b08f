"""The device HTTP API: one small ASGI app serving a whole fleet.

Every device listens on its own address (say 127.0.0.7:8080); one uvicorn server holds all the
listening sockets, and the app picks the agent by the connection's local address
(`scope["server"]`), so a device costs one socket and one dict entry. Hand-written rather than
litestar: five routes, and the per-request work is a dict lookup and one msgspec call.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping, Sequence
from types import MappingProxyType
from typing import Any, TypeVar

import msgspec
import uvicorn

from orchestrator.context import mac_var
from orchestrator.device.agent import DeviceAgent
from orchestrator.device.errors import RequestError
from orchestrator.device.faults import FaultProfile
from orchestrator.device.settings import Sleep
from orchestrator.protocol import PROTOCOL_VERSION
from orchestrator.protocol.messages import (
    CREDENTIALS_PATH,
    ENDPOINTS,
    ERROR_STATUS,
    IDENTIFY_PATH,
    INFO_PATH,
    MAX_REQUEST_BYTES,
    PAIRING_PATH,
    Acknowledged,
    Credentials,
    DeviceError,
    DeviceErrorCode,
    ErrorAnswer,
    IdentifyRequest,
    PairingDisplay,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Address = tuple[str, int]
Handler = Callable[[DeviceAgent, bytes], Awaitable[msgspec.Struct]]
T = TypeVar("T")

ANY_HOST = "0.0.0.0"  # noqa: S104 - a lookup key, nothing binds to it here
"""Mount a lone device (a real one listening on every address) under this host."""
SHUTDOWN_GRACE_S = 1
"""How long the server waits for open requests (an UNREACHABLE device's never end) at exit."""

_ENCODER = msgspec.json.Encoder()
_CREDENTIALS = msgspec.json.Decoder(Credentials)
_IDENTIFY = msgspec.json.Decoder(IdentifyRequest)
_PAIRING = msgspec.json.Decoder(PairingDisplay)
_ACK = Acknowledged(protocol_version=PROTOCOL_VERSION)
_HEADERS = [(b"content-type", b"application/json")]


class _ClientGoneError(Exception):
    """The client disconnected before the request was read."""


class DeviceApi:
    """The ASGI app: routes each connection to the agent listening on its local address."""

    def __init__(self, *, sleep: Sleep = asyncio.sleep) -> None:
        self._agents: dict[Address, DeviceAgent] = {}
        self._sleep = sleep

    def mount(self, address: Address, agent: DeviceAgent) -> None:
        """Serve `agent` to connections made to `address` (host, port); host ANY_HOST takes
        the connections to that port that no exact address claims."""
        self._agents[(address[0], address[1])] = agent

    def unmount(self, address: Address) -> None:
        """Stop serving whatever agent is at `address`."""
        self._agents.pop((address[0], address[1]), None)

    def _agent_at(self, server: Sequence[Any] | None) -> DeviceAgent | None:
        if not server:
            return None
        exact = self._agents.get((server[0], server[1]))
        return exact or self._agents.get((ANY_HOST, server[1]))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point (HTTP only; there is no lifespan work)."""
        if scope["type"] != "http":
            return
        agent = self._agent_at(scope.get("server"))
        if agent is None:
            await _answer(send, _error(DeviceErrorCode.NOT_FOUND, "no device at this address"))
            return
        token = mac_var.set(agent.identity.mac)
        try:
            if agent.fault is FaultProfile.UNREACHABLE:
                await _never_answer(receive)
                return
            if agent.fault is FaultProfile.SLOW:
                await self._sleep(agent.timing.slow_answer_s)
            await _answer(send, await _handle(agent, scope, receive))
        except _ClientGoneError:
            return
        finally:
            mac_var.reset(token)


async def _handle(agent: DeviceAgent, scope: Scope, receive: Receive) -> tuple[int, bytes]:
    key = (scope["method"], scope["path"])
    try:
        handler = _route(key)
        body = await _read_body(scope, receive) if scope["method"] == "POST" else b""
        answer = await handler(agent, body)
    except RequestError as exc:
        return _error(exc.code, exc.message)
    return STATUS[key], _ENCODER.encode(answer)


def _route(key: tuple[str, str]) -> Handler:
    handler = ROUTES.get(key)
    if handler is None:
        raise RequestError(DeviceErrorCode.NOT_FOUND, f"no endpoint {' '.join(key)}")
    return handler


async def _read_body(scope: Scope, receive: Receive) -> bytes:
    too_large = RequestError(
        DeviceErrorCode.PAYLOAD_TOO_LARGE, f"requests are at most {MAX_REQUEST_BYTES} bytes"
    )
    length = dict(scope["headers"]).get(b"content-length", b"0")
    if not length.isdigit():
        raise RequestError(DeviceErrorCode.INVALID_REQUEST, "bad Content-Length")
    if int(length) > MAX_REQUEST_BYTES:
        raise too_large
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGoneError
        body += message.get("body", b"")
        # Chunked bodies have no Content-Length: count as they arrive.
        if len(body) > MAX_REQUEST_BYTES:
            raise too_large
        if not message.get("more_body", False):
            return bytes(body)


async def _never_answer(receive: Receive) -> None:
    # Returning would make the server answer 500 itself: wait until the client gives up.
    while (await receive())["type"] != "http.disconnect":
        pass


def _decode(decoder: msgspec.json.Decoder[T], body: bytes) -> T:
    try:
        return decoder.decode(body or b"{}")
    except msgspec.DecodeError as exc:  # ValidationError included; its text names the field
        raise RequestError(DeviceErrorCode.INVALID_REQUEST, str(exc)) from exc


def _error(code: DeviceErrorCode, message: str) -> tuple[int, bytes]:
    answer = ErrorAnswer(
        protocol_version=PROTOCOL_VERSION, error=DeviceError(code=code, message=message)
    )
    return ERROR_STATUS[code], _ENCODER.encode(answer)


async def _answer(send: Send, answer: tuple[int, bytes]) -> None:
    status, body = answer
    headers = [*_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _info(agent: DeviceAgent, _body: bytes) -> msgspec.Struct:
    return agent.info()


async def _deliver(agent: DeviceAgent, body: bytes) -> msgspec.Struct:
    return await agent.deliver(_decode(_CREDENTIALS, body))


async def _identify(agent: DeviceAgent, body: bytes) -> msgspec.Struct:
    agent.identify(_decode(_IDENTIFY, body).seconds)
    return _ACK


async def _show_pairing(agent: DeviceAgent, body: bytes) -> msgspec.Struct:
    agent.show_pairing(_decode(_PAIRING, body))
    return _ACK


async def _pairing(agent: DeviceAgent, _body: bytes) -> msgspec.Struct:
    return msgspec.structs.replace(agent.pairing(), protocol_version=PROTOCOL_VERSION)


ROUTES: Mapping[tuple[str, str], Handler] = MappingProxyType(
    {
        ("GET", INFO_PATH): _info,
        ("POST", CREDENTIALS_PATH): _deliver,
        ("POST", IDENTIFY_PATH): _identify,
        ("POST", PAIRING_PATH): _show_pairing,
        ("GET", PAIRING_PATH): _pairing,
    }
)
STATUS: Mapping[tuple[str, str], int] = MappingProxyType(
    {(e.method, e.path): e.status for e in ENDPOINTS}
)
"""Success status per route, from the protocol's endpoint table."""


def listen(host: str, port: int = 0, *, backlog: int = 64) -> socket.socket:
    """A listening TCP socket for one device's API (port 0: any free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


@contextlib.asynccontextmanager
async def serving(api: DeviceApi, sockets: Sequence[socket.socket]) -> AsyncIterator[None]:
    """Serve `api` on `sockets` (already listening, so clients may connect at once) until
    the block ends; the server closes the sockets."""
    config = uvicorn.Config(
        api,
        interface="asgi3",
        lifespan="off",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=list(sockets)))
    try:
        yield
    finally:
        server.should_exit = True
        async with asyncio.timeout(SHUTDOWN_GRACE_S + 5):
            await task
