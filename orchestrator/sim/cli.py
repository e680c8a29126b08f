"""`orchestrator simulate`: run a simulated fleet until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import TextIO

from orchestrator.device.faults import FaultProfile
from orchestrator.protocol.advert import SERVICE_TYPE
from orchestrator.sim.fleet import Fleet, FleetSpec, loopback_fleet
from orchestrator.sim.netns_fleet import NetnsFleet, netns_fleet
from orchestrator.sim.preflight import netns_available


def add_simulate_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `simulate` on the CLI."""
    simulate = commands.add_parser(
        "simulate",
        help="run a simulated device fleet (no radio needed)",
        description="Run N reference device agents until interrupted (Ctrl-C).",
    )
    simulate.add_argument("--devices", type=int, required=True, help="how many devices")
    simulate.add_argument(
        "--tier",
        choices=["loopback", "netns"],
        default="loopback",
        help="loopback: no privileges, devices on 127.77.x.y; netns: one network namespace "
        "per device on an emulated onboarding network with real DHCP (needs root)",
    )
    simulate.add_argument("--seed", type=int, default=0, help="same seed, same MACs and faults")
    simulate.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="PROFILE=SHARE",
        help=f"share of devices with a fault, e.g. wrong_password=0.1; profiles: "
        f"{', '.join(p.value for p in FaultProfile if p is not FaultProfile.NONE)}",
    )
    simulate.add_argument(
        "--target-ssid", default="DelicasaFactory", help="the simulated target network's SSID"
    )


def parse_faults(values: list[str]) -> dict[FaultProfile, float]:
    """`["wrong_password=0.1"]` -> {WRONG_PASSWORD: 0.1}; ValueError says what is wrong."""
    shares: dict[FaultProfile, float] = {}
    for value in values:
        name, sep, share = value.partition("=")
        if not sep:
            raise ValueError(f"--fault {value!r}: expected PROFILE=SHARE")
        try:
            shares[FaultProfile(name.strip())] = float(share)
        except ValueError as exc:
            raise ValueError(f"--fault {value!r}: {exc}") from exc
    return shares


async def run_simulation(spec: FleetSpec, tier: str, out: TextIO, stop: asyncio.Event) -> None:
    """Run the fleet of `spec` on `tier`, describe it on `out`, and wait for `stop`."""
    if tier == "netns":
        if reason := netns_available():
            raise SimulationError(reason)
        async with netns_fleet(spec, service_type=SERVICE_TYPE) as bed_fleet:
            describe_netns(bed_fleet, out)
            await stop.wait()
        return
    async with loopback_fleet(spec) as fleet:
        describe(fleet, out)
        await stop.wait()


class SimulationError(Exception):
    """The simulation cannot run here; the message says why and what to do."""


def describe(fleet: Fleet, out: TextIO) -> None:
    """What a person (or a script) needs to talk to the fleet."""
    out.write(f"broker         {fleet.broker.url}\n")
    out.write(f"mdns service   {fleet.service_type} (on 127.0.0.1)\n")
    out.write(f"target network {fleet.spec.target_ssid!r}\n")
    out.write(f"devices        {len(fleet.devices)}\n\n")
    out.write(f"{'mac':<17}  {'family':<14}  {'api':<21}  fault\n")
    for device in fleet.devices:
        identity = device.agent.identity
        api = f"{device.ip}:{device.port}"
        out.write(f"{device.mac:<17}  {identity.family:<14}  {api:<21}  {device.agent.fault}\n")
    out.write("\nrunning; Ctrl-C stops the fleet\n")
    out.flush()


def describe_netns(fleet: NetnsFleet, out: TextIO) -> None:
    """The namespace tier: where each device lives and what it leased."""
    bed = fleet.bed
    out.write(f"broker         mqtt://{bed.broker.host}:{bed.broker.port} (target side)\n")
    out.write(f"onboarding     gateway {bed.onboarding_gateway} in namespace {bed.pi_namespace}\n")
    out.write(f"mdns service   {fleet.service_type}\n")
    out.write(f"target network {fleet.spec.target_ssid!r}\n")
    out.write(f"devices        {len(fleet.devices)}\n\n")
    out.write(f"{'mac':<17}  {'namespace':<22}  {'leased ip':<15}  fault\n")
    for device in fleet.devices:
        host = device.host
        out.write(f"{host.mac:<17}  {host.namespace:<22}  {device.ip:<15}  {device.fault}\n")
    out.write("\nrunning; Ctrl-C stops the fleet and removes the test bed\n")
    out.flush()


def simulate(args: argparse.Namespace) -> int:
    """The `simulate` command."""
    try:
        spec = FleetSpec(
            devices=args.devices,
            faults=parse_faults(args.fault),
            seed=args.seed,
            target_ssid=args.target_ssid,
        )
    except ValueError as exc:
        print(f"orchestrator simulate: {exc}", file=sys.stderr)
        return 2

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):  # stop the fleet cleanly, then exit 0
            loop.add_signal_handler(signum, stop.set)
        await run_simulation(spec, args.tier, sys.stdout, stop)

    try:
        asyncio.run(main())
    except (ValueError, SimulationError) as exc:
        print(f"orchestrator simulate: {exc}", file=sys.stderr)
        return 2
    return 0
