"""Entering a named network namespace from a worker thread (libc setns; Python 3.11 has no
`os.setns`).

A network namespace belongs to a thread, not to the process: one thread switches, does its
work and switches back, while the event loop's thread never moves. A socket keeps the
namespace it was created in, so a socket made here can be handed to the event loop
(`asyncio.start_server(sock=...)`, `asyncio.open_connection(sock=...)`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import functools
import os
import socket
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

NETNS_DIR = Path("/run/netns")
_CLONE_NEWNET = 0x40000000
# The calling thread's own namespace; /proc/self would name the main thread's.
_THREAD_NETNS = "/proc/thread-self/ns/net"

P = ParamSpec("P")
T = TypeVar("T")


class NamespaceError(OSError):
    """A namespace could not be entered (missing, or no CAP_SYS_ADMIN)."""


def namespace_path(name: str) -> Path:
    """Where `ip netns add NAME` mounts the namespace."""
    return NETNS_DIR / name


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc().setns(fd, _CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise NamespaceError(errno, os.strerror(errno))


@contextlib.contextmanager
def entered(name: str) -> Iterator[None]:
    """Move the calling thread into namespace `name` for the block, then back. Blocking:
    call it only in a worker thread, never in the event loop's thread."""
    with open(_THREAD_NETNS, "rb") as home, open(namespace_path(name), "rb") as target:
        _setns(target.fileno())
        try:
            yield
        finally:
            # Failing to return would leave a pooled thread in a foreign namespace.
            _setns(home.fileno())


def _call_in(name: str, fn: Callable[[], T]) -> T:
    with entered(name):
        return fn()


async def run_in_namespace(
    name: str, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
) -> T:
    """Run the blocking `fn(*args)` inside namespace `name` in a worker thread."""
    return await asyncio.to_thread(_call_in, name, functools.partial(fn, *args, **kwargs))


def _call_in_each(names: Sequence[str], fn: Callable[[], object]) -> None:
    for name in names:
        with entered(name):
            fn()


async def run_in_each_namespace(
    names: Sequence[str], fn: Callable[P, object], /, *args: P.args, **kwargs: P.kwargs
) -> None:
    """Run the blocking `fn(*args)` inside each of `names` in turn, in one worker thread
    (a switch costs microseconds, a thread hop far more)."""
    await asyncio.to_thread(_call_in_each, names, functools.partial(fn, *args, **kwargs))


async def socket_in_namespace(
    name: str,
    family: socket.AddressFamily = socket.AF_INET,
    kind: socket.SocketKind = socket.SOCK_STREAM,
) -> socket.socket:
    """A new non-blocking socket that lives in namespace `name`; the caller owns it."""
    sock = await run_in_namespace(name, socket.socket, family, kind)
    sock.settimeout(0.0)  # non-blocking, as asyncio requires
    return sock


async def connect_in_namespace(
    name: str, host: str, port: int, *, timeout_s: float = 5.0
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection from inside namespace `name` to `host:port`."""
    sock = await socket_in_namespace(name)
    try:
        async with asyncio.timeout(timeout_s):
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock)


_Started = concurrent.futures.Future[tuple[asyncio.AbstractEventLoop, "asyncio.Task[object]"]]


def _run_loop_in(name: str, main: Callable[[], Awaitable[T]], started: _Started) -> T:
    async def _main() -> T:
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - asyncio.run runs _main as a task
        started.set_result((asyncio.get_running_loop(), task))
        return await main()

    with entered(name):
        # Threads inherit the namespace of the thread that starts them, so the private
        # loop's executor (aiomqtt connects from it) lives in `name` as well.
        return asyncio.run(_main())


async def run_loop_in_namespace(name: str, main: Callable[[], Awaitable[T]]) -> T:
    """Run `main()` on a private event loop in a thread of its own inside namespace `name`,
    for libraries that create their own sockets (aiomqtt). Cancelling the caller cancels
    `main` and waits for its thread to finish."""
    started: _Started = concurrent.futures.Future()
    executor = ThreadPoolExecutor(1, thread_name_prefix=f"netns-{name}")
    try:
        done = asyncio.get_running_loop().run_in_executor(
            executor, _run_loop_in, name, main, started
        )
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            # Cancel `main` once it runs (a thread that failed first has nothing to cancel).
            either: list[asyncio.Future[Any]] = [done, asyncio.wrap_future(started)]
            await asyncio.wait(either, return_when=FIRST_COMPLETED)
            if started.done():
                loop, task = started.result()
                loop.call_soon_threadsafe(task.cancel)
            await asyncio.wait([done])
            if not done.cancelled():
                done.exception()  # retrieved: it is the cancellation we are raising
            raise
    finally:
        executor.shutdown(wait=False)
