"""The lease source without namespaces: lease lines and hook lines, the lease-file diff, the
hook script run by a real sh, the events file's tail across truncation and rotation, and the
source polling real files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.discovery.leases import (
    EventsTail,
    LeaseDiff,
    LeaseSource,
    hook_script,
    parse_event,
    parse_lease_line,
    parse_leases,
    write_hook,
)
from orchestrator.domain.discovery import Clue, SourceKind
from orchestrator.domain.mac import parse_mac
from orchestrator.ports.discovery import SourceUnavailableError
from tests.discovery.netns import running

A = parse_mac("02:00:00:00:00:0a")
B = parse_mac("02:00:00:00:00:0b")
LEASES = (
    "1795339891 02:00:00:00:00:0a 10.42.1.8 sim-0000 01:02:00:00:00:00:0a\n"
    "0 02:00:00:00:00:0b 10.42.1.9 * *\n"
)


def lease(mac: str, ip: str, present: bool = True) -> Clue:
    return Clue(mac=parse_mac(mac), source=SourceKind.LEASE, ip=ip, present=present)


# -- parsing -------------------------------------------------------------------------------


def test_lease_lines_give_mac_and_address() -> None:
    assert parse_lease_line(LEASES.splitlines()[0]) == (A, "10.42.1.8")
    assert parse_lease_line("0 02-00-00-00-00-0B 10.42.1.9 * *") == (B, "10.42.1.9")


@pytest.mark.parametrize(
    "line",
    [
        "duid 00:01:00:01:2c:4f:8e:1a:02:00:00:00:00:01",
        # An IPv6 lease: IAID where the MAC goes.
        "1795339891 1234567 fd00::5 host 00:01:00:01:2c",
        # Infiniband and other non-Ethernet hardware: dnsmasq prefixes the type.
        "1795339891 20-80:00:02:08:fe:80:00:00 10.42.1.9 * *",
        "1795339891 02:00:00:00:00:0a not-an-ip * *",
        "1795339891 02:00:00:00:00:0a",
        "",
    ],
)
def test_other_lease_lines_are_skipped(line: str) -> None:
    assert parse_lease_line(line) is None


def test_a_lease_file_being_written_is_read_up_to_its_last_full_line() -> None:
    assert parse_leases(LEASES) == {A: "10.42.1.8", B: "10.42.1.9"}
    # dnsmasq was cut off half way through B's line: "10.42.1.9" might still be "10.42.1.91".
    assert parse_leases(LEASES[:-8]) == {A: "10.42.1.8"}
    assert parse_leases("") == {}


def test_hook_lines_become_clues() -> None:
    assert parse_event("add 02:00:00:00:00:0a 10.42.1.8") == lease(A, "10.42.1.8")
    assert parse_event("old 02:00:00:00:00:0a 10.42.1.8 sim-0000") == lease(A, "10.42.1.8")
    assert parse_event("del 02:00:00:00:00:0a 10.42.1.8") == lease(A, "10.42.1.8", present=False)


@pytest.mark.parametrize(
    "line", ["init", "tftp 1234 10.42.1.8 /file", "arp-add 02:00:00:00:00:0a 10.42.1.8",
             "add 02:00:00:00:00:0a", "add nonsense 10.42.1.8", "add 02:00:00:00:00:0a fd00::1"],
)  # fmt: skip
def test_other_hook_lines_are_ignored(line: str) -> None:
    assert parse_event(line) is None


# -- the lease-file diff -------------------------------------------------------------------


def test_new_and_moved_leases_are_present_and_unchanged_ones_say_nothing() -> None:
    diff = LeaseDiff()
    assert diff.update({A: "10.42.1.8"}) == [lease(A, "10.42.1.8")]
    assert diff.update({A: "10.42.1.8"}) == []
    assert diff.update({A: "10.42.1.20", B: "10.42.1.9"}) == [
        lease(A, "10.42.1.20"),
        lease(B, "10.42.1.9"),
    ]


def test_a_lease_is_gone_only_when_two_reads_in_a_row_lack_it() -> None:
    diff = LeaseDiff()
    diff.update({A: "10.42.1.8", B: "10.42.1.9"})
    assert diff.update({A: "10.42.1.8"}) == []  # maybe a half-written file
    assert diff.unsettled()
    assert diff.update({A: "10.42.1.8"}) == [lease(B, "10.42.1.9", present=False)]
    assert not diff.unsettled()
    assert diff.update({A: "10.42.1.8"}) == []


def test_a_lease_back_in_the_next_read_was_never_gone() -> None:
    diff = LeaseDiff()
    diff.update({A: "10.42.1.8", B: "10.42.1.9"})
    assert diff.update({}) == []
    assert diff.update({A: "10.42.1.8", B: "10.42.1.9"}) == []
    assert not diff.unsettled()
    assert diff.update({B: "10.42.1.9"}) == []
    assert diff.update({B: "10.42.1.9"}) == [lease(A, "10.42.1.8", present=False)]


# -- the hook, run by sh ---------------------------------------------------------------------


def run_hook(script: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["/bin/sh", str(script), *args], capture_output=True, check=False)  # noqa: S603


def test_the_hook_appends_one_line_per_lease_event(tmp_path: Path) -> None:
    events = tmp_path / "odd 'dir'" / "events"
    events.parent.mkdir()
    script = write_hook(tmp_path / "hook.sh", events)
    assert script.stat().st_mode & 0o777 == 0o755
    assert script.read_text() == hook_script(events)
    for args in (
        ("add", "02:00:00:00:00:0a", "10.42.1.8", "sim-0000"),
        ("init",),
        ("tftp", "1024", "10.42.1.8", "/boot"),
        ("old", "02:00:00:00:00:0a", "10.42.1.8"),
        ("del", "02:00:00:00:00:0a", "10.42.1.8", "sim-0000"),
    ):
        done = run_hook(script, *args)
        assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")
    assert events.read_text() == (
        "add 02:00:00:00:00:0a 10.42.1.8\n"
        "old 02:00:00:00:00:0a 10.42.1.8\n"
        "del 02:00:00:00:00:0a 10.42.1.8\n"
    )


def test_the_hook_never_fails_dnsmasq(tmp_path: Path) -> None:
    script = write_hook(tmp_path / "hook.sh", tmp_path / "missing" / "events")
    done = run_hook(script, "add", "02:00:00:00:00:0a", "10.42.1.8")
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")


# -- the events file's tail ----------------------------------------------------------------


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as file:
        file.write(text)


def test_the_tail_skips_history_then_follows_complete_lines(tmp_path: Path) -> None:
    events = tmp_path / "events"
    events.write_text("add old-history\n")
    tail = EventsTail(events)
    try:
        assert tail.poll() == []
        append(events, "add 1\nadd 2")
        assert tail.poll() == ["add 1"]
        append(events, "2\n")
        assert tail.poll() == ["add 22"]
        assert tail.poll() == []
    finally:
        tail.close()


def test_a_file_created_after_the_first_poll_is_read_from_its_start(tmp_path: Path) -> None:
    events = tmp_path / "events"
    tail = EventsTail(events)
    try:
        assert tail.poll() == []
        append(events, "add 1\n")
        assert tail.poll() == ["add 1"]
    finally:
        tail.close()


def test_the_tail_starts_over_after_a_truncation(tmp_path: Path) -> None:
    events = tmp_path / "events"
    tail = EventsTail(events)
    try:
        tail.poll()
        append(events, "add 1\nadd 2\n")
        assert tail.poll() == ["add 1", "add 2"]
        events.write_text("del 3\n")  # copytruncate, then a shorter line
        assert tail.poll() == ["del 3"]
    finally:
        tail.close()


def test_a_file_rotated_by_someone_else_is_read_to_its_end(tmp_path: Path) -> None:
    events = tmp_path / "events"
    events.touch()
    tail = EventsTail(events)
    try:
        tail.poll()
        append(events, "add 1\n")
        events.rename(tmp_path / "events.old")
        append(tmp_path / "events.old", "add 2\n")  # written just before the rename
        append(events, "add 3\n")
        assert tail.poll() == ["add 1", "add 2", "add 3"]
        # A hook that had opened the old file before the rename writes late: one more poll.
        append(tmp_path / "events.old", "add 4\n")
        assert tail.poll() == ["add 4"]
        append(tmp_path / "events.old", "add 5\n")
        assert tail.poll() == []
    finally:
        tail.close()


def test_the_tail_rotates_the_file_past_its_size_limit(tmp_path: Path) -> None:
    events = tmp_path / "events"
    tail = EventsTail(events, max_bytes=20)
    try:
        tail.poll()
        append(events, "add 02:00:00:00:00:0a 10.42.1.8\n")
        assert tail.poll() == ["add 02:00:00:00:00:0a 10.42.1.8"]
        assert not events.exists()
        assert tail.rotated_path.read_text() == "add 02:00:00:00:00:0a 10.42.1.8\n"
        append(tail.rotated_path, "add late\n")  # the hook had it open
        append(events, "add new\n")
        assert tail.poll() == ["add late", "add new"]
    finally:
        tail.close()


# -- the source on real files --------------------------------------------------------------


def rewrite(path: Path, text: str) -> None:
    """As dnsmasq does: in place, so the inode stays."""
    with path.open("r+" if path.exists() else "w", encoding="utf-8") as file:
        file.truncate(0)
        file.write(text)


async def test_the_source_reports_leases_then_events_then_departures(tmp_path: Path) -> None:
    leases, events = tmp_path / "dnsmasq.leases", tmp_path / "events"
    rewrite(leases, LEASES)
    append(events, "add 02:00:00:00:00:0c 10.42.1.10\n")  # history: not reported
    source = LeaseSource(leases, events_file=events, poll_interval_s=0.01)
    assert source.kind is SourceKind.LEASE
    async with running(source) as seen:
        await seen.wait_until(lambda seen: len(seen.clues) == 2)
        assert seen.clues == [lease(A, "10.42.1.8"), lease(B, "10.42.1.9")]

        append(
            events, "old 02:00:00:00:00:0a 10.42.1.8 sim-0000\ndel 02:00:00:00:00:0d 10.42.1.11\n"
        )
        await seen.wait_until(lambda seen: len(seen.clues) == 4)
        assert seen.clues[2:] == [
            lease(A, "10.42.1.8"),
            lease("02:00:00:00:00:0d", "10.42.1.11", False),
        ]

        rewrite(leases, LEASES.splitlines(keepends=True)[0])
        await seen.wait_until(lambda seen: len(seen.clues) == 5)
        assert seen.clues[4] == lease(B, "10.42.1.9", present=False)


async def test_a_lease_file_not_written_yet_is_waited_for(tmp_path: Path) -> None:
    leases = tmp_path / "dnsmasq.leases"
    async with running(LeaseSource(leases, poll_interval_s=0.01)) as seen:
        rewrite(leases, LEASES)
        await seen.wait_until(lambda seen: len(seen.clues) == 2)


async def test_a_missing_directory_makes_the_source_unavailable(tmp_path: Path) -> None:
    source = LeaseSource(tmp_path / "dnsmasq.leases", events_file=tmp_path / "nowhere" / "ev")
    with pytest.raises(SourceUnavailableError, match=r"no directory .*nowhere.*events file"):
        async for _ in source.clues():
            pass


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root")
def test_an_unreadable_lease_file_makes_the_source_unavailable(tmp_path: Path) -> None:
    # tmp_path is root's and 0700: as nobody even its lease file's directory is out of reach.
    code = (
        "import asyncio; from pathlib import Path\n"
        "from orchestrator.discovery.leases import LeaseSource\n"
        "from orchestrator.ports.discovery import SourceUnavailableError\n"
        "async def main():\n"
        f"    async for _ in LeaseSource(Path({str(tmp_path / 'dnsmasq.leases')!r})).clues():\n"
        "        pass\n"
        "try:\n"
        "    asyncio.run(main())\n"
        "except SourceUnavailableError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(  # noqa: S603
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code],  # noqa: S607
        capture_output=True, text=True, check=False, cwd=Path(__file__).parents[2], timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"permission denied reading {tmp_path}")
