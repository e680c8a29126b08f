"""Blocking traffic on the test bed's onboarding network, to show discovery works without it.

There is no nftables, iptables or ebtables tool on the build machines, and this kernel has
neither tc's flower classifier nor its gact action (`action drop`). It has cls_bpf, though: a
classic BPF program in direct-action mode returns the verdict itself (TC_ACT_SHOT drops).
Attached to a clsact qdisc on the onboarding bridge in the Pi's namespace, at ingress (what
the bridge hands up to the Pi) and egress (what the Pi sends into the bridge), it cuts the
Pi off from mDNS: it neither hears adverts nor gets its questions out. Devices still hear
each other, as they would on a real access point whose host firewalled mDNS.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from orchestrator.sim.netns import ONBOARDING_BRIDGE
from orchestrator.sim.process import run_command
from orchestrator.sim.testbed import TestBed

MDNS_PORT = 5353
_TC_ACT_UNSPEC = 0xFFFFFFFF  # -1: no verdict, the next filter (or nothing) decides
_TC_ACT_SHOT = 2


def udp_port_filter(port: int) -> str:
    """A classic BPF program, in tc's `bytecode` notation, that drops IPv4 UDP datagrams
    from or to `port` (unfragmented or first fragments) and passes the rest; it runs on
    whole Ethernet frames."""
    # (code, jump-if-true, jump-if-false, k); jumps count instructions skipped.
    program = [
        (0x28, 0, 0, 12),  # ldh [12]: EtherType
        (0x15, 0, 9, 0x0800),  # IPv4, else pass
        (0x30, 0, 0, 23),  # ldb [23]: IP protocol
        (0x15, 0, 7, 17),  # UDP, else pass
        (0x28, 0, 0, 20),  # ldh [20]: flags and fragment offset
        (0x45, 5, 0, 0x1FFF),  # a later fragment has no UDP header: pass
        (0xB1, 0, 0, 14),  # ldxb 4*([14]&0xf): IP header length
        (0x48, 0, 0, 14),  # ldh [x+14]: source port
        (0x15, 3, 0, port),  # drop
        (0x48, 0, 0, 16),  # ldh [x+16]: destination port
        (0x15, 1, 0, port),  # drop
        (0x06, 0, 0, _TC_ACT_UNSPEC),  # pass
        (0x06, 0, 0, _TC_ACT_SHOT),  # drop
    ]
    return ",".join([str(len(program)), *(f"{c} {jt} {jf} {k}" for c, jt, jf, k in program)])


@contextlib.asynccontextmanager
async def block_mdns(bed: TestBed) -> AsyncIterator[None]:
    """Drop mDNS (UDP port 5353) between the Pi and the onboarding network for the block;
    restored on exit, even when the block raises."""
    tc = ["tc", "-n", bed.pi_namespace]
    await run_command([*tc, "qdisc", "add", "dev", ONBOARDING_BRIDGE, "clsact"])
    try:
        # da (direct action): the program's return value is the verdict.
        program = ["bpf", "bytecode", udp_port_filter(MDNS_PORT), "da"]
        for direction in ("ingress", "egress"):
            await run_command([*tc, "filter", "add", "dev", ONBOARDING_BRIDGE, direction, *program])
        yield
    finally:
        # Deleting the qdisc removes its filters with it.
        await run_command([*tc, "qdisc", "del", "dev", ONBOARDING_BRIDGE, "clsact"])
