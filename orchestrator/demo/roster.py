"""Which devices the demo simulates, which are on its allowlist, and which one misbehaves."""

from __future__ import annotations

import msgspec

from orchestrator.device.faults import FaultProfile
from orchestrator.sim.fleet import FleetSpec, fleet_macs

DEVICES = 12
UNLISTED = 3
SEED = 8


class Roster(msgspec.Struct, frozen=True, kw_only=True):
    """The demo fleet: the allowlisted devices (one of which always fails to join with
    auth_error) and the devices nobody put on the allowlist."""

    spec: FleetSpec
    allowlisted: tuple[str, ...]
    unlisted: tuple[str, ...]
    wrong_password: str
    """The allowlisted device whose joins always fail with auth_error."""


def demo_roster(devices: int = DEVICES, unlisted: int = UNLISTED, seed: int = SEED) -> Roster:
    """The fleet of `devices` (families alternate, as in every loopback fleet), the last
    `unlisted` of them off the allowlist, the first with the WRONG_PASSWORD fault."""
    if not 0 <= unlisted < devices:
        raise ValueError(f"unlisted must be between 0 and {devices - 1}, got {unlisted}")
    macs = fleet_macs(devices, seed)
    listed = tuple(macs[: devices - unlisted])
    wrong = listed[0]
    spec = FleetSpec(devices=devices, seed=seed, overrides={wrong: FaultProfile.WRONG_PASSWORD})
    return Roster(
        spec=spec,
        allowlisted=listed,
        unlisted=tuple(macs[devices - unlisted :]),
        wrong_password=wrong,
    )
