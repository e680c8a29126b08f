"""The device lifecycle table."""

from __future__ import annotations

import pytest

from orchestrator.device.errors import IllegalTransitionError
from orchestrator.device.lifecycle import TRANSITIONS, Phase, advance, mermaid
from orchestrator.protocol.messages import DeviceState


def test_every_phase_is_reachable_and_can_move_on() -> None:
    seen, frontier = {Phase.UNPROVISIONED}, [Phase.UNPROVISIONED]
    while frontier:
        for target in TRANSITIONS[frontier.pop()]:
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    assert seen == set(Phase)
    assert all(TRANSITIONS[phase] for phase in Phase)


def test_an_illegal_move_raises_a_named_error() -> None:
    assert advance(Phase.JOINING, Phase.FAILED) is Phase.FAILED
    with pytest.raises(IllegalTransitionError, match="from online to failed") as caught:
        advance(Phase.ONLINE, Phase.FAILED)
    assert (caught.value.current, caught.value.target) == ("online", "failed")


def test_phases_map_onto_the_advertised_states() -> None:
    assert {p.device_state for p in Phase} == set(DeviceState)
    assert [p for p in Phase if p.on_onboarding] == [
        Phase.UNPROVISIONED,
        Phase.PAIRING,
        Phase.ACCEPTED,
        Phase.FAILED,
    ]


def test_the_mermaid_diagram_has_every_move() -> None:
    diagram = mermaid()
    assert diagram.startswith("stateDiagram-v2\n")
    moves = sum(len(targets) for targets in TRANSITIONS.values())
    assert diagram.count(" --> ") == moves + 1
    assert "    online --> connecting\n" in diagram
