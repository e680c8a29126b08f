"""Kernel limits a large bed needs (neighbour table, receive backlog), raised for its life and
restored after, and the drop counters that tell whether a run overflowed them.

The neighbour table is shared by every namespace and defaults to 1024 entries: past that even
multicast sends fail silently. At 100+ devices one broadcast flooded to every bridge port
overflows `netdev_max_backlog`. Both limits are host-wide, so beds running side by side share
one record of the original values (under a file lock); the last one out restores them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

SYSCTL_DIR = Path("/proc/sys")
STATE_FILE = Path("/run/orchestrator-testbed-kernel.json")
GC_THRESH = tuple(f"net/ipv4/neigh/default/gc_thresh{i}" for i in (1, 2, 3))
BACKLOG = "net/core/netdev_max_backlog"


def wanted_limits(devices: int) -> dict[str, int]:
    """Limits for `devices` devices: each holds an entry for the Pi and the Pi and the broker
    one per device, on both networks; the backlog takes a broadcast to every port."""
    entries = 4 * devices + 256
    return {
        GC_THRESH[0]: entries,  # below this the table is never garbage collected
        GC_THRESH[1]: 2 * entries,
        GC_THRESH[2]: 4 * entries,
        BACKLOG: 16 * devices + 1000,
    }


def read_sysctl(key: str) -> int:
    """The current value of sysctl `key` (`net/core/...`)."""
    return int((SYSCTL_DIR / key).read_text(encoding="ascii"))


def current_limits() -> dict[str, int]:
    """The limits as they are; a namespace other than the host's shows none of them."""
    limits = {}
    for key in (*GC_THRESH, BACKLOG):
        with contextlib.suppress(FileNotFoundError):
            limits[key] = read_sysctl(key)
    return limits


@contextlib.contextmanager
def raised_limits(devices: int, holder: str) -> Iterator[dict[str, int]]:
    """Raise (never lower) the limits for the block and yield those in force. `holder` names
    this bed in the shared record; without the rights to do it, log and go on."""
    registered = False
    try:
        with _locked_state() as state:
            # Recorded first and written back whatever happens next: the record also tells
            # which beds are alive (see live_run_ids), and a failure half-way is undone by
            # the release.
            state.holders.append(holder)
            registered = True
            for key, wanted in wanted_limits(devices).items():
                current = read_sysctl(key)
                state.saved.setdefault(key, current)
                if wanted > current:
                    _write_sysctl(key, wanted)
                    state.raised[key] = wanted
    except OSError as exc:
        log.warning("cannot raise kernel limits (%s); large beds may drop packets", exc)
    try:
        yield current_limits()
    finally:
        if registered:
            try:
                _release(holder)
            except OSError as exc:
                log.warning("cannot restore kernel limits: %s", exc)


def live_run_ids() -> set[str]:
    """Forget crashed beds in the shared record (restoring the limits when no bed is left)
    and return the run ids of the live ones."""
    _release(holder="")
    with _locked_state() as state:
        return {h.split(":", 1)[1] for h in state.holders}


def _release(holder: str) -> None:
    with _locked_state() as state:
        state.holders = [h for h in state.holders if h != holder and _alive(h)]
        if state.holders:
            return
        for key, raised in state.raised.items():
            # Someone else changed it meanwhile: theirs to keep.
            if read_sysctl(key) == raised:
                _write_sysctl(key, state.saved[key])
            else:
                log.warning("%s changed while raised; leaving it as it is", key)


def holder_id(run_id: str) -> str:
    """The shared record's name for a bed of this process."""
    return f"{os.getpid()}:{run_id}"


def _alive(holder: str) -> bool:
    # A crashed run's entry must not keep the limits raised forever.
    try:
        pid = int(holder.split(":", 1)[0])
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    # A killed process stays a zombie until reaped, and containers' init often never reaps.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def _write_sysctl(key: str, value: int) -> None:
    (SYSCTL_DIR / key).write_text(str(value), encoding="ascii")


@dataclass(slots=True)
class _State:
    """The shared record: who holds the limits raised, and what they were before."""

    holders: list[str] = field(default_factory=list)
    saved: dict[str, int] = field(default_factory=dict)
    raised: dict[str, int] = field(default_factory=dict)


@contextlib.contextmanager
def _locked_state() -> Iterator[_State]:
    """The shared record, read and written back under an exclusive lock; deleted once no bed
    holds it."""
    while True:
        fd = os.open(STATE_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # The last holder may have deleted the file while we waited for its lock.
            if os.fstat(fd).st_ino != _inode(STATE_FILE):
                continue
            with os.fdopen(os.dup(fd), "r+", encoding="utf-8") as file:
                text = file.read()
                state = _State(**json.loads(text)) if text.strip() else _State()
                try:
                    yield state
                finally:
                    if state.holders:
                        file.seek(0)
                        file.truncate()
                        file.write(json.dumps(asdict(state)))
                    else:
                        STATE_FILE.unlink()
            return
        finally:
            os.close(fd)


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


@dataclass(frozen=True, slots=True)
class DropCounters:
    """Kernel counters that move when packets were lost for want of room."""

    backlog_drops: int
    neighbour_table_fulls: int

    def moved_since(self, earlier: DropCounters) -> dict[str, int]:
        """The counters that grew since `earlier`, with how much."""
        now, then = asdict(self), asdict(earlier)
        return {key: now[key] - then[key] for key in now if now[key] != then[key]}


def read_drop_counters() -> DropCounters:
    """Host-wide counters: per-CPU backlog overflows and neighbour table overflows."""
    softnet = Path("/proc/net/softnet_stat").read_text(encoding="ascii").splitlines()
    arp = Path("/proc/net/stat/arp_cache").read_text(encoding="ascii").splitlines()
    column = arp[0].split().index("table_fulls")
    return DropCounters(
        # The second column of softnet_stat counts packets dropped on a full backlog.
        backlog_drops=sum(int(line.split()[1], 16) for line in softnet),
        neighbour_table_fulls=sum(int(line.split()[column], 16) for line in arp[1:]),
    )


def read_link_drops() -> dict[str, int]:
    """Receive plus transmit drops per link of the calling thread's namespace (run it through
    setns; /proc/net would show the main thread's namespace)."""
    lines = Path("/proc/thread-self/net/dev").read_text(encoding="ascii").splitlines()[2:]
    drops = {}
    for line in lines:
        name, counters = line.split(":", 1)
        fields = counters.split()
        drops[name.strip()] = int(fields[3]) + int(fields[11])
    return drops
