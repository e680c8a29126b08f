"""The network-namespace test bed: an onboarding network (a bridge standing in for the Pi's
access point, real dnsmasq DHCP), a target network with a real Mosquitto, and one namespace
per simulated device, all driven from this one process.

    async with TestBed.build(devices=50) as bed:
        await bed.switch_to_target(bed.devices[0])

The Pi's namespace holds both bridges; the broker has its own namespace on the target
bridge, and the Pi does not route, so a device on the onboarding side cannot reach it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, replace
from ipaddress import IPv4Address
from pathlib import Path
from typing import TypeVar

from orchestrator.sim.broker import Broker, mosquitto
from orchestrator.sim.dnsmasq import Dnsmasq, DnsmasqConfig, dnsmasq, pool_size
from orchestrator.sim.kernel import holder_id, live_run_ids, raised_limits, read_link_drops
from orchestrator.sim.netns import (
    DEVICE_ONBOARDING_IF,
    DEVICE_TARGET_IF,
    ONBOARDING_BRIDGE,
    ONBOARDING_NET,
    TARGET_BRIDGE,
    Layout,
    bed_namespaces,
    ip_batch,
    network,
    remove_namespaces,
)
from orchestrator.sim.process import in_namespace
from orchestrator.sim.setns import namespace_path, run_in_namespace
from orchestrator.sim.udhcpc import DhcpError, lease, write_script

BROKER_PORT = 1883
DHCP_CONCURRENCY = 64
_WORKDIR_PREFIX = "testbed-"

T = TypeVar("T")
log = logging.getLogger(__name__)


class TestBedError(Exception):
    """The bed could not be built (devices without a lease, a service that did not start)."""


class Side(enum.StrEnum):
    """Which network a device is on."""

    ONBOARDING = "onboarding"
    TARGET = "target"


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceHost:
    """One simulated device's host: its namespace, MAC and addresses on both networks."""

    index: int
    hostname: str
    namespace: str
    mac: str
    onboarding_ip: IPv4Address
    target_ip: IPv4Address
    onboarding_interface: str = DEVICE_ONBOARDING_IF
    target_interface: str = DEVICE_TARGET_IF


class TestBed:
    """A built bed; only `TestBed.build` makes one."""

    __test__ = False  # a name pytest would otherwise try to collect

    def __init__(
        self,
        *,
        layout: Layout,
        broker: Broker,
        dhcp: Dnsmasq,
        dhcp_client_script: Path,
        devices: Sequence[DeviceHost],
        kernel_limits: dict[str, int],
        dhcp_pool: tuple[IPv4Address, IPv4Address],
    ) -> None:
        self.layout = layout
        self.dhcp_pool = dhcp_pool
        """The first and last address dnsmasq hands out (what an ARP sweep should cover)."""
        self.broker = broker
        self.dhcp = dhcp
        self.kernel_limits = kernel_limits
        self._script = dhcp_client_script
        self._devices = list(devices)
        self._sides = dict.fromkeys(range(len(devices)), Side.ONBOARDING)
        # nsfs inode numbers: a process left in one keeps the namespace alive after `netns del`.
        self._namespace_ids = {_inode(namespace_path(n)) for n in layout.namespaces}

    @classmethod
    @contextlib.asynccontextmanager
    async def build(
        cls,
        devices: int,
        *,
        dhcp_script: Path | None = None,
        dhcp_concurrency: int = DHCP_CONCURRENCY,
        broker_admin: tuple[str, str] | None = None,
    ) -> AsyncIterator[TestBed]:
        """Build a bed with `devices` devices, each holding a real DHCP lease, and tear all of
        it down when the block ends, even when it raises. `dhcp_script` is passed to dnsmasq
        as `--dhcp-script`; with `broker_admin` (username, password) the broker runs dynamic
        security with that admin instead of admitting anyone."""
        # A run killed with -9 leaves its namespaces behind (its children die with it); the
        # next bed clears them, so leftovers never pile up on a CI machine.
        if stale := await remove_crashed_beds():
            log.warning("removed %d namespaces of crashed test beds", len(stale))
        layout = Layout.new(devices)
        async with contextlib.AsyncExitStack() as stack:
            workdir = Path(
                stack.enter_context(
                    tempfile.TemporaryDirectory(prefix=f"{_WORKDIR_PREFIX}{layout.run_id}-")
                )
            )
            limits = stack.enter_context(raised_limits(devices, holder_id(layout.run_id)))
            await stack.enter_async_context(network(layout))
            size = pool_size(
                [layout.mac(i) for i in range(devices)],
                minimum=2 * devices + 16,
                limit=layout.dhcp_pool_limit,
            )
            config = DnsmasqConfig(
                interface=ONBOARDING_BRIDGE,
                network=ONBOARDING_NET,
                pool=(layout.dhcp_pool_start, layout.dhcp_pool_start + size - 1),
                lease_file=workdir / "dnsmasq.leases",
                max_leases=size,
                dhcp_script=dhcp_script,
            )
            dhcp = await stack.enter_async_context(dnsmasq(config, prefix=in_namespace(layout.pi)))
            broker = await _enter_quietly(
                stack,
                mosquitto(
                    str(layout.broker_address.ip),
                    BROKER_PORT,
                    prefix=in_namespace(layout.broker),
                    admin=broker_admin,
                ),
            )
            script = write_script(workdir)
            hosts = await _lease_all(layout, script, dhcp_concurrency)
            log.debug("bed %s: %d devices leased", layout.run_id, len(hosts))
            yield cls(
                layout=layout,
                broker=broker,
                dhcp=dhcp,
                dhcp_client_script=script,
                devices=hosts,
                kernel_limits=limits,
                dhcp_pool=config.pool,
            )

    @property
    def run_id(self) -> str:
        """The random id in every global name of this bed."""
        return self.layout.run_id

    @property
    def pi_namespace(self) -> str:
        """The Pi's namespace: run the orchestrator's network code here."""
        return self.layout.pi

    @property
    def onboarding_gateway(self) -> IPv4Address:
        """The Pi's address on the onboarding network, as devices see it."""
        return self.layout.pi_onboarding.ip

    @property
    def devices(self) -> tuple[DeviceHost, ...]:
        """Every device, by index, with its latest onboarding lease."""
        return tuple(self._devices)

    def side(self, device: DeviceHost) -> Side:
        """The network `device` is on now."""
        return self._sides[device.index]

    async def switch_to_target(self, device: DeviceHost) -> None:
        """Move `device` to the target network: its onboarding link goes down and loses its
        address, its target link comes up with a static address (a second veth on the
        target bridge: faster than moving one link between bridges)."""
        target = self.layout.target_address(device.index)
        await ip_batch(
            [
                f"link set {device.onboarding_interface} down",
                f"addr flush dev {device.onboarding_interface}",
                f"addr replace {target} dev {device.target_interface}",
                f"link set {device.target_interface} up",
            ],
            namespace=device.namespace,
        )
        self._sides[device.index] = Side.TARGET

    async def switch_to_onboarding(self, device: DeviceHost) -> DeviceHost:
        """Move `device` back to the onboarding network and lease an address again; return
        its record with that lease."""
        await ip_batch(
            [
                f"link set {device.target_interface} down",
                f"addr flush dev {device.target_interface}",
                f"link set {device.onboarding_interface} up",
            ],
            namespace=device.namespace,
        )
        address = await lease(
            device.namespace,
            device.onboarding_interface,
            script=self._script,
            hostname=device.hostname,
        )
        host = replace(device, onboarding_ip=address.ip)
        self._devices[device.index] = host
        self._sides[device.index] = Side.ONBOARDING
        return host

    async def bridge_drops(self) -> dict[str, int]:
        """Packets each bridge dropped. Device ports are left out: a port whose device is
        on the other network drops what the bridge floods to it, as an access point does
        for an absent station, and that is no overload."""
        drops = await run_in_namespace(self.layout.pi, read_link_drops)
        return {name: drops[name] for name in (ONBOARDING_BRIDGE, TARGET_BRIDGE)}

    def leftovers(self) -> list[str]:
        """What of this bed still exists (after teardown it should be nothing): namespaces
        and processes inside its namespaces."""
        found = [f"namespace {n}" for n in self.layout.namespaces if namespace_path(n).exists()]
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                with contextlib.suppress(OSError):
                    if _inode(proc / "ns" / "net") in self._namespace_ids:
                        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
                        found.append(f"process {proc.name}: {cmdline.decode(errors='replace')}")
        return found


async def remove_crashed_beds() -> list[str]:
    """Delete the namespaces and work directories of beds whose process died without tearing
    them down (kill -9; their dnsmasq and Mosquitto died with it) and return the namespaces'
    names. Beds of live processes, even half-built ones, are in the shared record and left
    alone."""
    live = live_run_ids()
    beds = bed_namespaces()
    stale = [name for run, names in beds.items() if run not in live for name in names]
    await remove_namespaces(stale)
    await asyncio.to_thread(_remove_workdirs, beds.keys() - live)
    return stale


def _remove_workdirs(run_ids: Iterable[str]) -> None:
    for run in run_ids:
        for workdir in Path(tempfile.gettempdir()).glob(f"{_WORKDIR_PREFIX}{run}-*"):
            shutil.rmtree(workdir, ignore_errors=True)


async def _enter_quietly(
    stack: contextlib.AsyncExitStack, manager: contextlib.AbstractAsyncContextManager[T]
) -> T:
    """Enter `manager` on `stack` so that its exit never sees the block's exception. The
    broker keeps a task group open around its block, and a task group wraps what the block
    raises in an ExceptionGroup; our callers should get their own exception back."""
    value = await manager.__aenter__()

    async def close(*_: object) -> None:
        await manager.__aexit__(None, None, None)

    stack.push_async_exit(close)
    return value


def _inode(path: Path) -> int:
    return path.stat().st_ino


async def _lease_all(layout: Layout, script: Path, concurrency: int) -> list[DeviceHost]:
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> DeviceHost:
        hostname = f"sim-{index:04d}"
        async with gate:
            address = await lease(
                layout.device(index), DEVICE_ONBOARDING_IF, script=script, hostname=hostname
            )
        return DeviceHost(
            index=index,
            hostname=hostname,
            namespace=layout.device(index),
            mac=layout.mac(index),
            onboarding_ip=address.ip,
            target_ip=layout.target_address(index).ip,
        )

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(i)) for i in range(layout.devices)]
    except* DhcpError as failures:
        first = failures.exceptions[0]
        raise TestBedError(
            f"{len(failures.exceptions)} of {layout.devices} devices got no lease: {first}"
        ) from failures
    return [task.result() for task in tasks]
