"""Preflight of the network-namespace tier: can this process build test beds, and if not,
why not and what to run instead."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path

from orchestrator.sim.broker import MOSQUITTO
from orchestrator.sim.dnsmasq import DNSMASQ
from orchestrator.sim.setns import NETNS_DIR
from orchestrator.sim.udhcpc import BUSYBOX

# A private /run for /run/netns; LOGNAME=root because the broker's config names the user
# Mosquitto switches to, and only root is mapped in the namespace.
UNPRIVILEGED_COMMAND = (
    "unshare -rnm sh -c 'mount -t tmpfs tmpfs /run && LOGNAME=root .venv/bin/pytest -m netns'"
)
_CAP_NET_ADMIN = 12
_CAP_SYS_ADMIN = 21


def netns_available() -> str | None:
    """None when this process can build beds; otherwise why not and the command to run.
    Root can; so can anyone inside a user namespace with its own /run (see the message)."""
    if sys.platform != "linux":
        return "the netns tier needs Linux network namespaces"
    return _privileges_problem() or _missing_tools()


def _privileges_problem() -> str | None:
    if os.geteuid() != 0:
        if not _user_namespaces():
            return "the netns tier needs root (user namespaces are off): run `sudo make test`"
        return (
            "the netns tier needs root or a user namespace: run `sudo make test`, or without "
            f"root `{UNPRIVILEGED_COMMAND}`"
        )
    caps = _effective_capabilities()
    if not (caps >> _CAP_NET_ADMIN) & 1 or not (caps >> _CAP_SYS_ADMIN) & 1:
        return (
            "the netns tier needs CAP_NET_ADMIN and CAP_SYS_ADMIN, which this root lacks "
            "(an unprivileged container?): run `sudo make test` on the host"
        )
    if not os.access(NETNS_DIR if NETNS_DIR.exists() else NETNS_DIR.parent, os.W_OK):
        return f"{NETNS_DIR} is not writable (a user namespace?): run `{UNPRIVILEGED_COMMAND}`"
    return None


def _missing_tools() -> str | None:
    tools = {"ip": "ip", "nsenter": "nsenter", BUSYBOX: BUSYBOX, DNSMASQ: DNSMASQ}
    missing = [name for name, tool in tools.items() if shutil.which(tool) is None]
    missing += [] if Path(MOSQUITTO).exists() else [MOSQUITTO]
    if missing:
        return f"the netns tier needs {', '.join(missing)}: run `sudo scripts/system-deps.sh`"
    return None


def _user_namespaces() -> bool:
    for knob, off in (("user/max_user_namespaces", "0"), ("kernel/unprivileged_userns_clone", "0")):
        with contextlib.suppress(OSError):
            if Path("/proc/sys", knob).read_text(encoding="ascii").strip() == off:
                return False
    return True


def _effective_capabilities() -> int:
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0
