"""`orchestrator simulate` as a user runs it: a fleet that answers, then a clean stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

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


def test_simulate_serves_a_fleet_and_stops_cleanly_on_sigint() -> None:
    before = _mosquittos()
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "simulate", "--devices", "3", "--seed", "4",
         "--fault", "wrong_password=0.34"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:  # ends when the process does: no sleeping, no polling
            lines.append(line)
            if line.startswith("running"):
                break
        rows = [line.split() for line in lines if line.startswith("02:DC:")]
        assert len(rows) == 3
        assert sorted(row[3] for row in rows) == ["none", "none", "wrong_password"]
        during = _mosquittos() - before
        assert len(during) == 1
        with httpx.Client(timeout=5) as client:
            for mac, _family, api, _fault in rows:
                info = msgspec.json.decode(
                    client.get(f"http://{api}/v1/info").content, type=DeviceInfo
                )
                assert info.mac == mac
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
    assert not (_mosquittos() - before), "the fleet's broker outlived it"


@pytest.mark.netns
def test_simulate_netns_leases_serves_and_leaves_nothing_behind() -> None:
    before = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "simulate", "--devices", "5", "--tier", "netns"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")},
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("running"):
                break
        rows = [line.split() for line in lines if line[:3] == "02:"]
        assert len(rows) == 5
        namespaces = {row[1] for row in rows}
        assert namespaces <= set(os.listdir("/run/netns"))
        assert len({row[2] for row in rows}) == 5  # five distinct leases
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
    after = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    assert after <= before, f"namespaces left behind: {sorted(after - before)}"
