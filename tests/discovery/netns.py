"""Running discovery sources and the bridge backend as the orchestrator would, and watching
them from a test.

On the namespace tier the orchestrator's side lives in the bed's "pi" namespace: a source or
network runs there on a private event loop (`run_loop_in_namespace`: the sockets and
subprocesses it makes land in that namespace) and hands what it sees to the test's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import TypeVar

from orchestrator.domain.discovery import Clue
from orchestrator.domain.mac import Mac, parse_mac
from orchestrator.domain.network import NetworkStatus, Station
from orchestrator.network.bridge import BridgeNetwork
from orchestrator.ports.discovery import ClueSource
from orchestrator.sim.setns import run_loop_in_namespace

T = TypeVar("T")
WAIT_S = 20.0


class Waiter:
    """Wakes the test's waits when something changes; fails them once what they watch has
    stopped."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()
        self._error: BaseException | None = None

    def notify(self) -> None:
        """Something changed: check again."""
        self._changed.set()

    def fail(self, error: BaseException) -> None:
        """What is watched stopped with `error`: waits raise it."""
        self._error = error
        self._changed.set()

    async def wait_until(self, predicate: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
        """Until `predicate()` holds; TimeoutError after `timeout_s`."""
        async with asyncio.timeout(timeout_s):
            while not predicate():
                if self._error is not None:
                    raise self._error
                self._changed.clear()
                await self._changed.wait()


class Collected:
    """The clues of one running source, as the test's loop sees them."""

    def __init__(self) -> None:
        self.clues: list[Clue] = []
        self.waiter = Waiter()

    def add(self, clue: Clue) -> None:
        """Take one clue (on the test's loop)."""
        self.clues.append(clue)
        self.waiter.notify()

    def latest(self) -> dict[Mac, Clue]:
        """The last clue about each MAC."""
        return {clue.mac: clue for clue in self.clues}

    def present(self) -> dict[Mac, str | None]:
        """The MACs whose last clue says present, with their addresses."""
        return {mac: clue.ip for mac, clue in self.latest().items() if clue.present}

    def about(self, mac: Mac) -> list[Clue]:
        """Every clue about `mac`, in order."""
        return [clue for clue in self.clues if clue.mac == mac]

    async def wait_until(
        self, predicate: Callable[[Collected], bool], timeout_s: float = WAIT_S
    ) -> None:
        """Until `predicate(self)` holds; TimeoutError after `timeout_s`, the source's own
        error if it stops first."""
        await self.waiter.wait_until(lambda: predicate(self), timeout_s)


async def _pump(source: ClueSource, deliver: Callable[[Clue], object]) -> None:
    async for clue in source.clues():
        deliver(clue)


@contextlib.asynccontextmanager
async def _watching(run: Awaitable[None], waiter: Waiter) -> AsyncIterator[None]:
    """Run `run` in a task for the block; its failure fails `waiter`'s waits, and is raised
    at the end of a block that did not raise."""
    task: asyncio.Task[None] = asyncio.ensure_future(run)

    def ended(done: asyncio.Task[None]) -> None:
        if not done.cancelled() and (error := done.exception()) is not None:
            waiter.fail(error)

    task.add_done_callback(ended)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.wait([task])
    if not task.cancelled() and (error := task.exception()) is not None:
        raise error


@contextlib.asynccontextmanager
async def running(source: ClueSource) -> AsyncIterator[Collected]:
    """Run `source` on this loop for the block."""
    collected = Collected()
    async with _watching(_pump(source, collected.add), collected.waiter):
        yield collected


@contextlib.asynccontextmanager
async def running_in_namespace(
    namespace: str, make_source: Callable[[], ClueSource]
) -> AsyncIterator[Collected]:
    """Run the source `make_source()` makes on a private loop inside `namespace` for the
    block; its clues arrive on this loop."""
    collected = Collected()
    home = asyncio.get_running_loop()

    async def main() -> None:
        await _pump(make_source(), lambda clue: home.call_soon_threadsafe(collected.add, clue))

    async with _watching(run_loop_in_namespace(namespace, main), collected.waiter):
        yield collected


class RemoteNetwork:
    """A BridgeNetwork running on a private loop in another namespace: what it reported last,
    and a way to call it there."""

    def __init__(self) -> None:
        self.status: NetworkStatus | None = None
        self.stations: Mapping[Mac, Station] = {}
        self.waiter = Waiter()
        self._network: BridgeNetwork | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def report(self, status: NetworkStatus, stations: Mapping[Mac, Station]) -> None:
        """Take a status and station table (on the test's loop)."""
        self.status, self.stations = status, stations
        self.waiter.notify()

    async def wait_until(
        self, predicate: Callable[[RemoteNetwork], bool], timeout_s: float = WAIT_S
    ) -> None:
        """Until `predicate(self)` holds."""
        await self.waiter.wait_until(lambda: predicate(self), timeout_s)

    def attach(self, network: BridgeNetwork, loop: asyncio.AbstractEventLoop) -> None:
        """The network, and the loop it runs on (called from that loop)."""
        self._network, self._loop = network, loop

    async def call(self, work: Callable[[BridgeNetwork], Awaitable[T]]) -> T:
        """`await work(network)` on the network's own loop."""
        network, loop = self._network, self._loop
        assert network is not None
        assert loop is not None

        async def run() -> T:
            return await work(network)

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(run(), loop))


@contextlib.asynccontextmanager
async def network_in_namespace(
    namespace: str, make_network: Callable[[], BridgeNetwork]
) -> AsyncIterator[RemoteNetwork]:
    """Bring up the network `make_network()` makes, on a private loop inside `namespace`,
    and report every status it watches to this loop; closed when the block ends."""
    remote = RemoteNetwork()
    home = asyncio.get_running_loop()
    started: asyncio.Future[None] = home.create_future()

    async def main() -> None:
        async with make_network() as network:
            remote.attach(network, asyncio.get_running_loop())
            await network.up()
            home.call_soon_threadsafe(_resolve, started, remote.waiter)
            async for status in network.watch():
                home.call_soon_threadsafe(remote.report, status, network.stations())

    async with _watching(run_loop_in_namespace(namespace, main), remote.waiter):
        await remote.waiter.wait_until(started.done)
        yield remote


def _resolve(future: asyncio.Future[None], waiter: Waiter) -> None:
    if not future.done():
        future.set_result(None)
    waiter.notify()


def macs(items: Iterable[str]) -> set[Mac]:
    """Canonical MACs."""
    return {parse_mac(item) for item in items}
