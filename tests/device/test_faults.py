"""The seeded assignment of fault profiles over a fleet."""

from __future__ import annotations

import inspect
import math
from collections import Counter

import msgspec
import pytest

from orchestrator.device.faults import FaultPlan, FaultPlanError, FaultProfile, assign_faults

MACS = [f"02:00:00:00:{n // 256:02X}:{n % 256:02X}" for n in range(100)]
SHARES = {
    FaultProfile.WRONG_PASSWORD: 0.1,
    FaultProfile.LATE: 0.05,
    FaultProfile.UNREACHABLE: 0.033,
    FaultProfile.FLAPS: 0.2,
}


def test_the_same_seed_gives_the_same_assignment_whatever_the_input_order() -> None:
    first = assign_faults(MACS, SHARES, seed=7)
    again = assign_faults(list(reversed(MACS)), SHARES, seed=7)
    other = assign_faults(MACS, SHARES, seed=8)
    assert first == again
    assert list(first) == MACS  # answers in the order asked
    assert first != other


@pytest.mark.parametrize("size", [1, 7, 30, 100, 333])
def test_shares_are_respected_within_rounding(size: int) -> None:
    fleet = [f"02:00:00:01:{n // 256:02X}:{n % 256:02X}" for n in range(size)]
    counts = Counter(assign_faults(fleet, SHARES, seed=size).values())
    for profile, share in SHARES.items():
        assert abs(counts[profile] - share * size) < 1
    faulty = sum(counts[p] for p in SHARES)
    assert faulty == min(size, round(math.fsum(SHARES.values()) * size))
    assert counts[FaultProfile.NONE] == size - faulty


def test_a_device_listed_twice_is_assigned_once() -> None:
    assert assign_faults(MACS * 2, SHARES, seed=1) == assign_faults(MACS, SHARES, seed=1)


def test_overrides_win_and_shares_apply_to_the_rest() -> None:
    overrides = {
        MACS[0]: FaultProfile.SLOW,
        MACS[1]: FaultProfile.NONE,
        "02:ff": FaultProfile.LATE,
    }
    plan = FaultPlan(shares={FaultProfile.STALE_RETAINED: 0.5}, seed=3, overrides=overrides)
    assigned = plan.assign(MACS)
    assert assigned[MACS[0]] is FaultProfile.SLOW
    assert assigned[MACS[1]] is FaultProfile.NONE
    assert "02:ff" not in assigned  # an override for a device not in the fleet is ignored
    assert Counter(assigned.values())[FaultProfile.STALE_RETAINED] == 49


def test_a_plan_is_configuration_data() -> None:
    raw = b'{"shares": {"flaps": 0.25}, "seed": 9, "overrides": {"02:00:00:00:00:01": "late"}}'
    plan = msgspec.json.decode(raw, type=FaultPlan)
    assert plan.shares == {FaultProfile.FLAPS: 0.25}
    assert plan.overrides == {"02:00:00:00:00:01": FaultProfile.LATE}
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"shares": {"gremlins": 0.1}}', type=FaultPlan)


@pytest.mark.parametrize(
    "shares",
    [
        {FaultProfile.SLOW: 0.7, FaultProfile.LATE: 0.4},
        {FaultProfile.SLOW: -0.1},
        {FaultProfile.NONE: 0.5},
    ],
)
def test_impossible_shares_are_refused(shares: dict[FaultProfile, float]) -> None:
    with pytest.raises(FaultPlanError):
        assign_faults(MACS, shares, seed=0)


def test_every_profile_is_documented_in_one_line() -> None:
    lines = inspect.getsource(FaultProfile).splitlines()
    for profile in FaultProfile:
        at = next(i for i, line in enumerate(lines) if line.startswith(f"    {profile.name} ="))
        doc = lines[at + 1].strip()
        assert doc.startswith('"""'), profile
        assert doc.endswith('"""'), profile
        assert len(doc) > 20, profile
