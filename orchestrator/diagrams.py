"""Mermaid state diagrams of the lifecycles, rendered from their transition tables.

`python -m orchestrator.diagrams DIR` (`make docs`) writes one `.mmd` file per machine into DIR
and the page docs/state-machines.md beside it (in DIR's parent); a test fails when a committed
file differs from a fresh render, so the diagrams cannot drift from the code.

Self-loops (a repeated request that changes nothing, such as pausing a paused session) are
left out of the drawings and listed under each diagram instead: drawn, they bury the moves.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from pathlib import Path

from orchestrator.domain.attempt import ATTEMPT_TRANSITIONS, AttemptPhase
from orchestrator.domain.candidate import CANDIDATE_TRANSITIONS, CandidateState
from orchestrator.domain.session import SESSION_TRANSITIONS, SessionState

PAGE = "state-machines.md"


@dataclass(frozen=True, slots=True)
class Edge:
    """One move of a machine; `event` is empty where the table names no event."""

    source: str
    target: str
    event: str = ""


@dataclass(frozen=True, slots=True)
class Machine:
    """A lifecycle to draw: its states in declaration order, its moves, and where it starts."""

    name: str
    title: str
    summary: str
    source: str
    """The module and table the diagram is drawn from."""
    states: tuple[str, ...]
    initial: str
    edges: tuple[Edge, ...]

    @property
    def moves(self) -> tuple[Edge, ...]:
        """The edges that change the state (the ones drawn)."""
        return tuple(edge for edge in self.edges if edge.source != edge.target)

    @property
    def self_loops(self) -> tuple[Edge, ...]:
        """The edges that leave the state as it is (listed, not drawn)."""
        return tuple(edge for edge in self.edges if edge.source == edge.target)

    @property
    def terminal(self) -> tuple[str, ...]:
        """States no move leaves (self-loops do not count)."""
        left = {edge.source for edge in self.moves}
        return tuple(state for state in self.states if state not in left)


def _from_events(table: Iterable[tuple[tuple[StrEnum, StrEnum], StrEnum]]) -> tuple[Edge, ...]:
    return tuple(Edge(source.value, target.value, event.value) for (source, event), target in table)


def _from_pairs(table: Iterable[tuple[StrEnum, StrEnum]]) -> tuple[Edge, ...]:
    return tuple(Edge(source.value, target.value) for source, target in table)


def machines() -> tuple[Machine, ...]:
    """The three lifecycles, as the domain defines them."""
    return (
        Machine(
            name="session",
            title="Batch session",
            summary=(
                "A batch session, from discovery until it is closed (stopped, discarded after "
                "a restart, or expired)."
            ),
            source="orchestrator/domain/session.py `SESSION_TRANSITIONS`",
            states=tuple(state.value for state in SessionState),
            initial=SessionState.DISCOVERING.value,
            edges=_from_events(SESSION_TRANSITIONS.items()),
        ),
        Machine(
            name="candidate",
            title="Provisioning candidate",
            summary=(
                "One device in one session; a skip ends `failed` too, and `retry` is refused "
                "once the session's retry budget is spent."
            ),
            source="orchestrator/domain/candidate.py `CANDIDATE_TRANSITIONS`",
            states=tuple(state.value for state in CandidateState),
            initial=CandidateState.DISCOVERED.value,
            edges=_from_events(CANDIDATE_TRANSITIONS.items()),
        ),
        Machine(
            name="attempt",
            title="Provisioning attempt",
            summary=(
                "One set of credentials issued to one device; the table lists phase pairs, "
                "so its edges carry no event."
            ),
            source="orchestrator/domain/attempt.py `ATTEMPT_TRANSITIONS`",
            states=tuple(phase.value for phase in AttemptPhase),
            initial=AttemptPhase.PREPARED.value,
            edges=_from_pairs(ATTEMPT_TRANSITIONS),
        ),
    )


def render_mermaid(machine: Machine) -> str:
    """The machine as a Mermaid `stateDiagram-v2`: initial and terminal states marked with
    `[*]`, one line per move labelled with its events (several events sharing a move are
    joined with commas), self-loops left out. Lines are sorted, so table order does not matter.
    """
    labels: dict[tuple[str, str], list[str]] = {}
    for edge in machine.moves:
        labels.setdefault((edge.source, edge.target), []).append(edge.event)
    lines = ["stateDiagram-v2", f"    [*] --> {machine.initial}"]
    for (source, target), events in sorted(
        labels.items(), key=lambda item: _order(machine, item[0])
    ):
        named = ", ".join(sorted(event for event in events if event))
        lines.append(f"    {source} --> {target}" + (f": {named}" if named else ""))
    lines.extend(f"    {state} --> [*]" for state in machine.terminal)
    return "\n".join(lines) + "\n"


def _order(machine: Machine, pair: tuple[str, str]) -> tuple[int, int]:
    return machine.states.index(pair[0]), machine.states.index(pair[1])


def render_page(all_machines: Iterable[Machine], diagrams_dir: str) -> str:
    """docs/state-machines.md: every diagram with a sentence, and its self-loops."""
    parts = [
        "# State machines",
        "",
        "Generated by `make docs` (orchestrator/diagrams.py) from the transition tables in "
        "`orchestrator/domain/`: never edit this page by hand. `[*]` marks where a machine "
        "starts and the states it ends in. "
        "Moves that keep the state (self-loops, such as pausing a paused session) are not "
        "drawn; each diagram lists them below it. How the machines fit together: "
        "[architecture.md](architecture.md).",
    ]
    for machine in all_machines:
        parts += [
            "",
            f"## {machine.title}",
            "",
            f"{machine.summary} Drawn from {machine.source}; also in "
            f"[{diagrams_dir}/{machine.name}.mmd]({diagrams_dir}/{machine.name}.mmd).",
            "",
            "```mermaid",
            render_mermaid(machine).rstrip("\n"),
            "```",
            "",
            _self_loops_sentence(machine),
        ]
    return "\n".join(parts) + "\n"


def _self_loops_sentence(machine: Machine) -> str:
    loops = sorted(
        machine.self_loops, key=lambda edge: (machine.states.index(edge.source), edge.event)
    )
    if not loops:
        return "No self-loops."
    items = ", ".join(f"`{edge.event}` in `{edge.source}`" for edge in loops)
    return f"Self-loops (not drawn): {items}."


def files(diagrams_dir: Path) -> dict[Path, Callable[[], str]]:
    """Every generated file (the `.mmd` files in `diagrams_dir`, the page in its parent) and
    the function rendering it."""
    all_machines = machines()
    rendered: dict[Path, Callable[[], str]] = {
        diagrams_dir / f"{machine.name}.mmd": partial(render_mermaid, machine)
        for machine in all_machines
    }
    rendered[diagrams_dir.parent / PAGE] = lambda: render_page(all_machines, diagrams_dir.name)
    return rendered


def main(argv: list[str]) -> int:
    """Write the diagrams into the directory named by `argv[1]` and the page beside it."""
    if len(argv) != 2:
        print("usage: python -m orchestrator.diagrams DIR", file=sys.stderr)
        return 2
    directory = Path(argv[1])
    directory.mkdir(parents=True, exist_ok=True)
    for path, render in files(directory).items():
        path.write_text(render(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
