"""`orchestrator simulate` as a user runs it: a fleet that answers, then a clean stop."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import httpx
import msgspec
import pytest

from orchestrator.device.faults import FaultProfile
from orchestrator.protocol.messages import DeviceInfo
from orchestrator.sim.cli import parse_faults


def test_parse_faults() -> None:
    assert parse_faults(["wrong_password=0.1", "flaps=0.05"]) == {
        FaultProfile.WRONG_PASSWORD: 0.1,
        FaultProfile.FLAPS: 0.05,
    }
    for bad in (["wrong_password"], ["nope=0.1"], ["flaps=many"]):
        with pytest.raises(ValueError, match="--fault"):
            parse_faults(bad)


def _mosquittos() -> set[int]:
    found = subprocess.run(
        ["/usr/bin/pgrep", "-x", "mosquitto"], capture_output=True, text=True, check=False
    )
    return {int(pid) for pid in found.stdout.split()}


def _namespaces() -> set[str]:
    return set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()


@contextlib.contextmanager
def simulating(*args: str) -> Iterator[list[list[str]]]:
    """Run `orchestrator simulate ARGS`, yield its device rows once it says it runs, then stop
    it with SIGINT (as Ctrl-C would) and require a clean exit."""
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "orchestrator", "simulate", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")},
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:  # ends when the process does: no sleeping, no polling
            lines.append(line)
            if line.startswith("running"):
                break
        yield [line.split() for line in lines if line[:3].upper() == "02:"]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def test_simulate_serves_a_fleet_and_stops_cleanly_on_sigint() -> None:
    before = _mosquittos()
    with simulating("--devices", "3", "--seed", "4", "--fault", "wrong_password=0.34") as rows:
        assert len(rows) == 3
        assert sorted(row[3] for row in rows) == ["none", "none", "wrong_password"]
        assert len(_mosquittos() - before) == 1
        with httpx.Client(timeout=5) as client:
            for mac, _family, api, _fault in rows:
                answer = client.get(f"http://{api}/v1/info")
                assert msgspec.json.decode(answer.content, type=DeviceInfo).mac == mac
    assert not (_mosquittos() - before), "the fleet's broker outlived it"


@pytest.mark.netns
def test_simulate_netns_leases_serves_and_leaves_nothing_behind() -> None:
    before = _namespaces()
    with simulating("--devices", "5", "--tier", "netns") as rows:
        assert len(rows) == 5
        assert {row[1] for row in rows} <= _namespaces()
        assert len({row[2] for row in rows}) == 5  # five distinct leases
    assert _namespaces() <= before, f"namespaces left behind: {sorted(_namespaces() - before)}"
