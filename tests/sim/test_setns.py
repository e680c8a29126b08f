"""One process, many namespaces: sockets keep the namespace they were made in, and a private
loop runs (and is cancelled) inside a namespace."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from orchestrator.sim.setns import (
    connect_in_namespace,
    namespace_path,
    run_in_namespace,
    run_loop_in_namespace,
    socket_in_namespace,
)
from orchestrator.sim.testbed import TestBed

pytestmark = [pytest.mark.netns, pytest.mark.parametrize("netns_bed", [2], indirect=True)]


def _netns_inode() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


async def test_a_server_socket_made_in_a_device_namespace_serves_there(netns_bed: TestBed) -> None:
    device = netns_bed.devices[0]
    listener = await socket_in_namespace(device.namespace)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((str(device.onboarding_ip), 0))
    port = listener.getsockname()[1]

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(greet, sock=listener)
    async with server:
        # The Pi reaches the device over the onboarding bridge; this process's own
        # namespace has no route there at all.
        reader, writer = await connect_in_namespace(
            netns_bed.pi_namespace, str(device.onboarding_ip), port
        )
        assert await reader.read() == b"hello"
        writer.close()
        await writer.wait_closed()
    assert _netns_inode() != namespace_path(device.namespace).stat().st_ino


async def test_threads_come_back_home(netns_bed: TestBed) -> None:
    home = _netns_inode()
    inside = await run_in_namespace(netns_bed.devices[1].namespace, _netns_inode)
    assert inside == namespace_path(netns_bed.devices[1].namespace).stat().st_ino
    assert await asyncio.to_thread(_netns_inode) == home


async def test_a_private_loop_runs_inside_and_is_cancelled_with_its_caller(
    netns_bed: TestBed,
) -> None:
    namespace = netns_bed.devices[0].namespace

    async def where() -> int:
        return await asyncio.get_running_loop().run_in_executor(None, _netns_inode)

    assert await run_loop_in_namespace(namespace, where) == namespace_path(namespace).stat().st_ino

    ended = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def forever() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            loop.call_soon_threadsafe(ended.set)

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await run_loop_in_namespace(namespace, forever)
    assert ended.is_set()
