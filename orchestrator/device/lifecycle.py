"""The device's lifecycle: one enum of phases and the one table of moves between them.

The phases refine the protocol's DeviceState (what /info and mDNS show) with the steps a
device goes through after accepting credentials.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from orchestrator.device.errors import IllegalTransitionError
from orchestrator.protocol.messages import DeviceState


class Phase(StrEnum):
    """Where the agent is. Values are logged and may be persisted: never rename them."""

    UNPROVISIONED = "unprovisioned"
    """On the onboarding network, waiting for credentials."""
    PAIRING = "pairing"
    """On the onboarding network, asking to be paired (its pairing button was pressed):
    waiting for a code from the orchestrator, then showing it until the display is cleared."""
    ACCEPTED = "accepted"
    """Holds credentials, about to leave the onboarding network."""
    JOINING = "joining"
    """Left the onboarding network; trying to join the target network."""
    CONNECTING = "connecting"
    """On the target network; connecting (or reconnecting) to the MQTT broker."""
    ONLINE = "online"
    """Published its online status and holds the MQTT connection."""
    FAILED = "failed"
    """Gave up; back on the onboarding network with a last failure, open to new credentials."""

    @property
    def device_state(self) -> DeviceState:
        """What the device advertises in this phase."""
        return ADVERTISED[self]

    @property
    def on_onboarding(self) -> bool:
        """Whether the device is on the onboarding network (reachable, advertised over mDNS)."""
        return self in ON_ONBOARDING


ADVERTISED: Mapping[Phase, DeviceState] = MappingProxyType(
    {
        Phase.UNPROVISIONED: DeviceState.UNPROVISIONED,
        Phase.PAIRING: DeviceState.PAIRING,
        Phase.ACCEPTED: DeviceState.PROVISIONED,
        Phase.JOINING: DeviceState.PROVISIONED,
        Phase.CONNECTING: DeviceState.PROVISIONED,
        Phase.ONLINE: DeviceState.PROVISIONED,
        Phase.FAILED: DeviceState.FAILED,
    }
)

ON_ONBOARDING = frozenset({Phase.UNPROVISIONED, Phase.PAIRING, Phase.ACCEPTED, Phase.FAILED})

TRANSITIONS: Mapping[Phase, frozenset[Phase]] = MappingProxyType(
    {
        Phase.UNPROVISIONED: frozenset({Phase.PAIRING, Phase.ACCEPTED}),
        Phase.PAIRING: frozenset({Phase.UNPROVISIONED, Phase.ACCEPTED}),
        Phase.ACCEPTED: frozenset({Phase.JOINING}),
        Phase.JOINING: frozenset({Phase.CONNECTING, Phase.FAILED}),
        Phase.CONNECTING: frozenset({Phase.ONLINE, Phase.FAILED}),
        Phase.ONLINE: frozenset({Phase.CONNECTING}),
        Phase.FAILED: frozenset({Phase.ACCEPTED}),
    }
)
"""The only moves there are; anything else raises IllegalTransitionError."""

ACCEPTS_CREDENTIALS = frozenset({Phase.UNPROVISIONED, Phase.PAIRING, Phase.FAILED})


def advance(current: Phase, target: Phase) -> Phase:
    """`target`, if the table allows moving there from `current`."""
    if target not in TRANSITIONS[current]:
        raise IllegalTransitionError(current.value, target.value)
    return target


def mermaid() -> str:
    """The transition table as a Mermaid state diagram (for docs/)."""
    lines = ["stateDiagram-v2", f"    [*] --> {Phase.UNPROVISIONED.value}"]
    lines += [
        f"    {source.value} --> {target.value}"
        for source in Phase
        for target in sorted(TRANSITIONS[source], key=list(Phase).index)
    ]
    return "\n".join(lines) + "\n"
