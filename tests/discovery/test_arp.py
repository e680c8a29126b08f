"""The ARP source without namespaces: answers and misses as clues, the sweep loop over a
scripted sweep, and a real sweep that cannot run (no interface, no CAP_NET_RAW)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from orchestrator.discovery.arp import ArpPresence, ArpSource, address_range, arp_sweep
from orchestrator.domain.discovery import Clue, SourceKind
from orchestrator.domain.mac import Mac, parse_mac
from orchestrator.ports.discovery import SourceUnavailableError

A = parse_mac("02:00:00:00:00:0a")
B = parse_mac("02:00:00:00:00:0b")


def arp(mac: Mac, ip: str, present: bool = True) -> Clue:
    return Clue(mac=mac, source=SourceKind.ARP, ip=ip, present=present)


def test_every_answer_is_a_sighting() -> None:
    presence = ArpPresence()
    assert presence.sweep({A: "10.42.1.8", B: "10.42.1.9"}) == [
        arp(A, "10.42.1.8"),
        arp(B, "10.42.1.9"),
    ]
    assert presence.sweep({A: "10.42.1.8"}) == [arp(A, "10.42.1.8")]


def test_a_device_is_gone_after_missing_enough_sweeps_in_a_row() -> None:
    presence = ArpPresence(misses=2)
    presence.sweep({A: "10.42.1.8", B: "10.42.1.9"})
    assert presence.sweep({A: "10.42.1.8"}) == [arp(A, "10.42.1.8")]  # one miss: maybe lost
    assert presence.sweep({A: "10.42.1.8", B: "10.42.1.9"}) == [
        arp(A, "10.42.1.8"),
        arp(B, "10.42.1.9"),
    ]
    assert presence.sweep({A: "10.42.1.8"}) == [arp(A, "10.42.1.8")]
    assert presence.sweep({A: "10.42.1.8"}) == [arp(A, "10.42.1.8"), arp(B, "10.42.1.9", False)]
    assert presence.sweep({A: "10.42.1.8"}) == [arp(A, "10.42.1.8")]  # said once


def test_a_device_that_never_answered_is_never_gone() -> None:
    presence = ArpPresence(misses=1)
    assert presence.sweep({}) == []
    presence.sweep({A: "10.42.1.8"})
    assert presence.sweep({}) == [arp(A, "10.42.1.8", False)]
    with pytest.raises(ValueError, match="at least 1"):
        ArpPresence(misses=0)


def test_an_address_range_is_inclusive() -> None:
    assert address_range("10.42.1.1", "10.42.1.3") == [
        IPv4Address("10.42.1.1"),
        IPv4Address("10.42.1.2"),
        IPv4Address("10.42.1.3"),
    ]
    with pytest.raises(ValueError, match="empty"):
        address_range("10.42.1.3", "10.42.1.1")


class ScriptedSweep:
    """Answers each sweep from a script, then says it cannot go on."""

    def __init__(self, answers: Sequence[dict[Mac, str]]) -> None:
        self._answers = list(answers)
        self.calls: list[tuple[str, Sequence[str], float]] = []

    def __call__(
        self, interface: str, addresses: Sequence[str], timeout_s: float
    ) -> dict[Mac, str]:
        self.calls.append((interface, addresses, timeout_s))
        if not self._answers:
            raise SourceUnavailableError("script over")
        return self._answers.pop(0)


async def test_the_source_sweeps_the_given_addresses_again_and_again() -> None:
    sweep = ScriptedSweep([{A: "10.42.1.8", B: "10.42.1.9"}, {A: "10.42.1.8"}, {A: "10.42.1.8"}])
    source = ArpSource(
        "br-onb", address_range("10.42.1.8", "10.42.1.9"), interval_s=0, timeout_s=0.5, sweep=sweep
    )
    assert source.kind is SourceKind.ARP
    clues: list[Clue] = []

    async def collect() -> None:
        async for clue in source.clues():
            clues.append(clue)  # noqa: PERF401 - the loop ends by raising

    with pytest.raises(SourceUnavailableError, match="script over"):
        await collect()
    assert clues == [
        arp(A, "10.42.1.8"),
        arp(B, "10.42.1.9"),
        arp(A, "10.42.1.8"),
        arp(A, "10.42.1.8"),
        arp(B, "10.42.1.9", False),
    ]
    assert sweep.calls[0] == ("br-onb", ["10.42.1.8", "10.42.1.9"], 0.5)
    assert len(sweep.calls) == 4


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="no addresses"):
        ArpSource("br-onb", [])
    with pytest.raises(ValueError, match="interface name"):
        ArpSource("a-name-far-too-long", ["10.42.1.8"])


def test_sweeping_a_missing_interface_is_unavailable() -> None:
    with pytest.raises(SourceUnavailableError, match="no interface 'nosuch0'"):
        arp_sweep("nosuch0", ["10.42.1.8"], 0.1)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root")
def test_without_cap_net_raw_the_sweep_is_unavailable_and_scapy_stays_quiet() -> None:
    # A process without CAP_NET_RAW (dropped from its bounding set, as root): the sweep reads
    # loopback's addresses, imports scapy (not before) and fails to open its raw socket.
    code = (
        "import sys\n"
        "from orchestrator.discovery.arp import arp_sweep\n"
        "from orchestrator.ports.discovery import SourceUnavailableError\n"
        "print('scapy imported early:', any(m.startswith('scapy') for m in sys.modules))\n"
        "try:\n"
        "    arp_sweep('lo', ['127.0.0.1'], 0.1)\n"
        "except SourceUnavailableError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(  # noqa: S603
        ["setpriv", "--inh-caps=-net_raw", "--bounding-set=-net_raw",  # noqa: S607
         sys.executable, "-W", "error", "-c", code],
        capture_output=True, text=True, check=False, cwd=Path(__file__).parents[2], timeout=30,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (0, "")
    first, second = done.stdout.splitlines()
    assert first == "scapy imported early: False"
    assert second.startswith("ARP sweeps need CAP_NET_RAW")


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(os.geteuid() != 0, reason="raw sockets need CAP_NET_RAW")
def test_a_real_sweep_prints_nothing_and_leaves_no_socket(
    capfd: pytest.CaptureFixture[str],
) -> None:
    # Loopback does no ARP: nobody answers, but scapy does all its work.
    arp_sweep("lo", ["127.0.0.1"], 0.05)  # scapy imported and set up
    before = open_fds()
    assert arp_sweep("lo", ["127.0.0.2", "127.0.0.3"], 0.05) == {}
    assert open_fds() == before
    assert capfd.readouterr() == ("", "")
