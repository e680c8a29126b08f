"""The device HTTP client against a real socket: answers, rejections, and which failures
may have reached the device (a timeout after sending) and which cannot have (no connection)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import msgspec
import pytest

from orchestrator.ports.devices import (
    DeviceRejectedError,
    DeviceTimeoutError,
    DeviceUnreachableError,
)
from orchestrator.protocol.messages import MAX_REQUEST_BYTES, DeviceInfo, PairingDisplay
from orchestrator.sim.broker import free_port
from orchestrator.transport.http import DeviceHttpClient

Reply = Callable[[bytes], Awaitable[bytes | None]]
"""Given the request (head and body), the raw answer; None to keep silent."""

INFO = {
    "protocol_version": 1,
    "mac": "aa:bb:cc:00:00:01",
    "family": "esp32-cam",
    "model": "ESP32-CAM",
    "firmware_version": "1.0.0",
    "rssi": -50,
    "state": "unprovisioned",
    "security_schemes": ["plain"],
}


def http(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


@contextlib.asynccontextmanager
async def device(reply: Reply) -> AsyncIterator[tuple[int, list[bytes]]]:
    """A one-route device on 127.0.0.1: its port and the requests it received."""
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            request = head + await reader.readexactly(length)
            received.append(request)
            answer = await reply(request)
            if answer is not None:
                writer.write(answer)
                await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield port, received
        server.close()


def answering(raw: bytes) -> Reply:
    async def reply(_: bytes) -> bytes:
        return raw

    return reply


async def test_info_decodes_the_answer() -> None:
    async with (
        device(answering(http("200 OK", msgspec.json.encode(INFO)))) as (port, received),
        DeviceHttpClient.open(port=port) as client,
    ):
        info = await client.info("127.0.0.1")
    assert info == msgspec.convert(INFO, DeviceInfo)
    assert received[0].startswith(b"GET /v1/info HTTP/1.1\r\n")


async def test_a_post_carries_its_json_body() -> None:
    display = PairingDisplay(code="AB12CD")
    ok = http("200 OK", b'{"protocol_version": 1, "ok": true}')
    async with (
        device(answering(ok)) as (port, received),
        DeviceHttpClient.open(port=port) as client,
    ):
        await client.show_pairing("127.0.0.1", display)
    head, _, body = received[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /v1/pairing HTTP/1.1\r\n")
    assert b"content-type: application/json" in head.lower()
    assert msgspec.json.decode(body, type=PairingDisplay) == display


async def test_an_error_answer_in_the_protocol_shape_is_the_devices_own_words() -> None:
    error = {"protocol_version": 1, "error": {"code": "busy", "message": "already provisioning"}}
    async with (
        device(answering(http("409 Conflict", msgspec.json.encode(error)))) as (port, _),
        DeviceHttpClient.open(port=port) as client,
    ):
        with pytest.raises(DeviceRejectedError) as caught:
            await client.info("127.0.0.1")
    assert (caught.value.code, caught.value.status) == ("busy", 409)
    assert "already provisioning" in str(caught.value)


async def test_an_error_answer_in_another_shape_is_named_by_its_status() -> None:
    async with (
        device(answering(http("500 Internal Server Error", b"oops", "text/plain"))) as (port, _),
        DeviceHttpClient.open(port=port) as client,
    ):
        with pytest.raises(DeviceRejectedError) as caught:
            await client.info("127.0.0.1")
    assert (caught.value.code, caught.value.status) == ("500", 500)


@pytest.mark.parametrize("body", [b"not json", b'{"mac": 5}'])
async def test_an_answer_that_is_not_the_protocol_is_unreachable(body: bytes) -> None:
    async with (
        device(answering(http("200 OK", body))) as (port, _),
        DeviceHttpClient.open(port=port) as client,
    ):
        with pytest.raises(DeviceUnreachableError, match="bad answer") as caught:
            await client.info("127.0.0.1")
    assert not isinstance(caught.value, DeviceTimeoutError | DeviceRejectedError)


async def test_silence_after_the_request_was_sent_is_a_timeout() -> None:
    """The device has the request: it may have acted on it."""
    hold = asyncio.Event()

    async def silent(_: bytes) -> None:
        await hold.wait()

    async with (
        device(silent) as (port, received),
        DeviceHttpClient.open(port=port, timeout_s=0.3) as client,
    ):
        with pytest.raises(DeviceTimeoutError):
            await client.info("127.0.0.1")
        hold.set()
    assert len(received) == 1


async def test_a_closed_port_is_unreachable_not_a_timeout() -> None:
    async with DeviceHttpClient.open(port=free_port()) as client:
        with pytest.raises(DeviceUnreachableError) as caught:
            await client.info("127.0.0.1")
    assert not isinstance(caught.value, DeviceTimeoutError)


async def test_a_connection_that_is_never_accepted_is_unreachable_not_a_timeout() -> None:
    """A listening socket whose backlog is full: the SYN goes unanswered, nothing was sent."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        # Fill the backlog (the kernel completes backlog + 1 handshakes, then drops SYNs);
        # non-blocking, so a filler whose SYN is dropped does not hang the test.
        fillers = [socket.socket() for _ in range(4)]
        try:
            for filler in fillers:
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
            async with DeviceHttpClient.open(port=port, timeout_s=0.3) as client:
                with pytest.raises(DeviceUnreachableError) as caught:
                    await client.info("127.0.0.1")
        finally:
            for filler in fillers:
                filler.close()
    assert not isinstance(caught.value, DeviceTimeoutError)


async def test_an_oversized_request_is_refused_before_sending() -> None:
    async with (
        device(answering(http("200 OK", b"{}"))) as (port, received),
        DeviceHttpClient.open(port=port) as client,
    ):
        with pytest.raises(ValueError, match="over"):
            await client.show_pairing(
                "127.0.0.1", PairingDisplay(code="AB12CD", claim_url="x" * MAX_REQUEST_BYTES)
            )
    assert received == []
