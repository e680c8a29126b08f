"""DHCP leases as discovery clues: dnsmasq's lease file and its `--dhcp-script` hook.

dnsmasq rewrites its lease file in place on every change (a read can catch it half written)
and calls the hook one event at a time, waiting for it, with `add|old|del <mac> <ip>
[hostname]`. So the hook is a tiny POSIX sh script that appends one line to an events file
(an O_APPEND write this small is atomic) and never blocks; the source tails that file and
diffs the lease file, polling both. The lease file gives the leases granted before we
started; the events say at once when a device (re)leases or releases.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import os
import shlex
import sys
import threading
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from orchestrator.domain.discovery import Clue, SourceKind
from orchestrator.domain.mac import Mac, is_mac, parse_mac
from orchestrator.ports.discovery import SourceUnavailableError

log = logging.getLogger(__name__)

DEFAULT_MAX_EVENTS_BYTES = 1 << 20
"""Past this the source rotates the events file (to `<name>.1`, replacing the last one)."""
_EVENTS = {"add": True, "old": True, "del": False}
"""Hook actions and whether the device holds a lease after them (`init`, `tftp`, `arp*` are
ignored)."""
_MAX_READ = 1 << 20


# -- the hook --------------------------------------------------------------------------------


def hook_script(events_file: Path) -> str:
    """The `--dhcp-script` hook appending each lease event to `events_file`. dnsmasq waits for
    it, so it forks nothing and ignores every failure (a missing directory must not stall
    DHCP); printf is a dash builtin and writes its one line in one write."""
    target = shlex.quote(str(events_file))
    return (
        "#!/bin/sh\n"
        "# dnsmasq --dhcp-script: append `<action> <mac> <ip>` to the discovery events file.\n"
        'case "$1" in\n'
        f'add|old|del) {{ printf \'%s %s %s\\n\' "$1" "$2" "$3" >>{target}; }} 2>/dev/null ;;\n'
        "esac\n"
        "exit 0\n"
    )


def write_hook(path: Path, events_file: Path) -> Path:
    """Write the hook for `events_file` to `path`, executable (0755), and return `path`."""
    path.write_text(hook_script(events_file), encoding="utf-8")
    path.chmod(0o755)
    return path


# -- parsing (pure) --------------------------------------------------------------------------


def parse_lease_line(line: str) -> tuple[Mac, str] | None:
    """`<expiry> <mac> <ip> <hostname|*> <clientid|*>` as (MAC, IPv4); None for anything else
    (the `duid` line and IPv6 leases, non-Ethernet hardware types, damage)."""
    fields = line.split()
    if len(fields) < 3 or not is_mac(fields[1]):
        return None
    ip = _ipv4(fields[2])
    return (parse_mac(fields[1]), ip) if ip else None


def parse_leases(text: str) -> dict[Mac, str]:
    """Every IPv4 lease in a lease file's text. A last line without its newline is left out:
    dnsmasq is still writing it."""
    lines = text.split("\n")[:-1]
    return dict(lease for line in lines if (lease := parse_lease_line(line)))


def parse_event(line: str) -> Clue | None:
    """One line of the events file as a clue; None for other actions and damaged lines."""
    fields = line.split()
    if len(fields) < 3 or fields[0] not in _EVENTS or not is_mac(fields[1]):
        return None
    ip = _ipv4(fields[2])
    if ip is None:
        return None
    return Clue(
        mac=parse_mac(fields[1]), source=SourceKind.LEASE, ip=ip, present=_EVENTS[fields[0]]
    )


def _ipv4(text: str) -> str | None:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        return None


class LeaseDiff:
    """The lease file's successive contents as clues: a lease that appears or changes address
    is present, one that disappears is gone. A read can catch dnsmasq half way through
    rewriting the file, so a lease is gone only once two reads in a row lack it."""

    def __init__(self) -> None:
        self._leases: dict[Mac, str] = {}
        self._missing: set[Mac] = set()

    def unsettled(self) -> bool:
        """Whether the last read lacked leases it still has to confirm gone."""
        return bool(self._missing)

    def read(self, text: str) -> list[Clue]:
        """Take the file's current text; what changed since the last read."""
        return self.update(parse_leases(text))

    def update(self, leases: Mapping[Mac, str]) -> list[Clue]:
        """Take the current leases; what changed since the last update."""
        clues = [
            Clue(mac=mac, source=SourceKind.LEASE, ip=ip)
            for mac, ip in leases.items()
            if self._leases.get(mac) != ip
        ]
        absent = self._leases.keys() - leases.keys()
        gone = absent & self._missing
        self._missing = absent - gone
        clues.extend(
            Clue(mac=mac, source=SourceKind.LEASE, ip=self._leases.pop(mac), present=False)
            for mac in sorted(gone)
        )
        self._leases.update(leases)
        return clues


# -- files (blocking; run in a worker thread) ------------------------------------------------


@dataclass(slots=True)
class _Handle:
    file: BinaryIO
    inode: int
    offset: int
    partial: bytes = b""

    def drain(self) -> list[str]:
        """Complete lines appended since the last drain (an unfinished one waits)."""
        self.file.seek(self.offset)
        data = self.file.read(_MAX_READ)
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        return [line.decode("utf-8", "replace") for line in lines]


class EventsTail:
    """Follows the hook's append-only events file: remembers the offset, notices the file
    being truncated (copytruncate) or replaced (rotated by logrotate or by us), and rotates it
    itself past `max_bytes` by renaming it to `<name>.1`. A replaced file is read to its end,
    and once more on the next poll for a hook that had opened it just before the rename."""

    def __init__(self, path: Path, *, max_bytes: int = DEFAULT_MAX_EVENTS_BYTES) -> None:
        self._path = path
        self._max_bytes = max_bytes
        self._current: _Handle | None = None
        self._retiring: list[_Handle] = []
        self._started = False

    @property
    def rotated_path(self) -> Path:
        """Where a rotated events file goes."""
        return self._path.with_name(self._path.name + ".1")

    def poll(self) -> list[str]:
        """Lines appended since the last poll. The first poll skips what the file already
        holds: those events are history, and the lease file says what holds now."""
        lines: list[str] = []
        for handle in self._retiring:
            lines += handle.drain()
            handle.file.close()
        self._retiring = []
        stat = _stat(self._path)
        current = self._current
        if current is not None and (stat is None or stat.st_ino != current.inode):
            lines += current.drain()
            self._retiring.append(current)
            current = self._current = None
        if current is None and stat is not None:
            current = self._current = self._open(skip_history=not self._started)
        self._started = True
        if current is None:
            return lines
        size = os.fstat(current.file.fileno()).st_size
        if size < current.offset:  # truncated in place: start over
            current.offset, current.partial = 0, b""
        if size > current.offset:
            lines += current.drain()
        if current.offset >= self._max_bytes:
            self._rotate(current)
        return lines

    def close(self) -> None:
        """Close every file held."""
        for handle in [*self._retiring, *([self._current] if self._current else [])]:
            handle.file.close()
        self._retiring, self._current = [], None

    def _open(self, *, skip_history: bool) -> _Handle | None:
        try:
            file = self._path.open("rb")
        except FileNotFoundError:  # rotated away between stat and open
            return None
        stat = os.fstat(file.fileno())
        return _Handle(file=file, inode=stat.st_ino, offset=stat.st_size if skip_history else 0)

    def _rotate(self, current: _Handle) -> None:
        stat = _stat(self._path)
        if stat is None or stat.st_ino != current.inode:
            return  # someone else rotated it already: the next poll follows
        try:
            self._path.replace(self.rotated_path)
        except OSError as exc:
            # Reading goes on; only the file keeps growing. Said once, not every poll.
            log.warning("cannot rotate the DHCP events file %s: %s", self._path, exc)
            self._max_bytes = sys.maxsize
            return
        log.info("rotated the DHCP events file %s (%d bytes)", self._path, current.offset)


class _LeaseFile:
    """The lease file, read only when its inode, size or mtime changed (or a lease it lost
    still needs confirming)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stamp: tuple[int, int, int] | None = None
        self._diff = LeaseDiff()

    def poll(self) -> list[Clue]:
        stat = _stat(self._path)
        stamp = (stat.st_ino, stat.st_size, stat.st_mtime_ns) if stat else None
        if stamp == self._stamp and not self._diff.unsettled():
            return []
        # Stamped before reading: a change during the read shows up as a new stamp next time.
        self._stamp = stamp
        try:
            text = self._path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            text = ""
        return self._diff.read(text)


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None


class _Watcher:
    """Both files; every method is blocking and serialised (a cancelled poll may still be
    running in its thread when the source closes)."""

    def __init__(self, lease_file: Path, events_file: Path | None, max_events_bytes: int) -> None:
        self._lease_file = lease_file
        self._events_file = events_file
        self._leases = _LeaseFile(lease_file)
        self._events = EventsTail(events_file, max_bytes=max_events_bytes) if events_file else None
        self._lock = threading.Lock()

    def start(self) -> list[Clue]:
        for directory, purpose in self._directories():
            try:
                found = directory.is_dir()
            except OSError as exc:
                raise SourceUnavailableError(_describe(exc)) from exc
            if not found:
                raise SourceUnavailableError(f"no directory {directory} (for {purpose})")
        return self.poll()

    def poll(self) -> list[Clue]:
        with self._lock:
            try:
                clues = self._leases.poll()
                if self._events is not None:
                    clues += [c for line in self._events.poll() if (c := parse_event(line))]
            except OSError as exc:
                raise SourceUnavailableError(_describe(exc)) from exc
            return clues

    def close(self) -> None:
        with self._lock:
            if self._events is not None:
                self._events.close()

    def _directories(self) -> list[tuple[Path, str]]:
        found = [(self._lease_file.parent, "dnsmasq's lease file")]
        if self._events_file is not None:
            found.append((self._events_file.parent, "the DHCP hook's events file"))
        return found


def _describe(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied reading {exc.filename}: run as dnsmasq's user or group"
    return f"cannot read {exc.filename}: {exc.strerror or exc}"


class LeaseSource:
    """ClueSource over dnsmasq's lease file and, when given, the hook's events file (write the
    hook with `write_hook` and pass it to dnsmasq as `--dhcp-script`)."""

    kind = SourceKind.LEASE

    def __init__(
        self,
        lease_file: Path,
        *,
        events_file: Path | None = None,
        poll_interval_s: float = 0.1,
        max_events_bytes: int = DEFAULT_MAX_EVENTS_BYTES,
    ) -> None:
        self._lease_file = lease_file
        self._events_file = events_file
        self._poll_interval_s = poll_interval_s
        self._max_events_bytes = max_events_bytes

    async def clues(self) -> AsyncIterator[Clue]:
        """The current leases, then every change, polling every `poll_interval_s`.
        SourceUnavailableError when a directory is missing or a file cannot be read."""
        watcher = _Watcher(self._lease_file, self._events_file, self._max_events_bytes)
        try:
            batch = await asyncio.to_thread(watcher.start)
            while True:
                for clue in batch:
                    yield clue
                await asyncio.sleep(self._poll_interval_s)
                batch = await asyncio.to_thread(watcher.poll)
        finally:
            with contextlib.suppress(OSError):
                watcher.close()
