"""A simulated device's DHCP client: busybox udhcpc, run once per lease inside the device's
namespace, configuring the address it was offered."""

from __future__ import annotations

from ipaddress import IPv4Interface
from pathlib import Path

from orchestrator.sim.process import CommandError, in_namespace, run_command

BUSYBOX = "busybox"
LEASE_TIMEOUT_S = 20.0

# udhcpc calls its script with deconfig|bound|renew|leasefail|nak and the offer in the
# environment (`mask` is the prefix length). One `ip -batch` replaces whatever the
# interface had; the echo tells the caller which address it got.
SCRIPT = """#!/bin/sh
case "$1" in
bound|renew)
    printf 'addr flush dev %s\\naddr add %s/%s dev %s\\n' \\
        "$interface" "$ip" "$mask" "$interface" | ip -batch - || exit 1
    echo "lease $ip/$mask"
    ;;
esac
"""


class DhcpError(Exception):
    """A device got no lease; carries the client's own words."""


def write_script(directory: Path) -> Path:
    """Write the client's event script into `directory` and return its path."""
    path = directory / "udhcpc.sh"
    path.write_text(SCRIPT, encoding="ascii")
    path.chmod(0o700)
    return path


async def lease(
    namespace: str,
    interface: str,
    *,
    script: Path,
    hostname: str,
    timeout_s: float = LEASE_TIMEOUT_S,
) -> IPv4Interface:
    """Get a lease on `interface` inside `namespace`, configure it, and return it."""
    argv = [
        *in_namespace(namespace),
        BUSYBOX,
        "udhcpc",
        "-f",  # foreground: we await it
        "-q",  # exit once bound, leaving the address configured
        "-n",  # exit with an error when no lease comes
        "-i",
        interface,
        "-t",  # discover retries, one a second: dnsmasq answers at once with --no-ping
        str(max(int(timeout_s), 1)),
        "-T",
        "1",
        "-s",
        str(script),
        "-x",
        f"hostname:{hostname}",
    ]
    try:
        out = await run_command(argv, timeout_s=timeout_s + 5)
    except CommandError as exc:
        raise DhcpError(f"{namespace}/{interface}: no lease: {exc.stderr.strip()[-300:]}") from exc
    for line in out.splitlines():
        if line.startswith("lease "):
            return IPv4Interface(line.split()[1])
    raise DhcpError(f"{namespace}/{interface}: udhcpc exited without a lease: {out[-300:]}")
