"""The state diagrams in docs/ are rendered from the transition tables and must not drift."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator.diagrams import Edge, Machine, files, machines, main, render_mermaid
from orchestrator.domain.attempt import ATTEMPT_TRANSITIONS
from orchestrator.domain.candidate import CANDIDATE_TRANSITIONS
from orchestrator.domain.session import SESSION_TRANSITIONS

DOCS = Path(__file__).parents[2] / "docs"
_LINE = re.compile(r"^    (\S+) --> (\S+)(?:: (.+))?$")


def _parse(diagram: str) -> tuple[set[tuple[str, str, str]], str, set[str]]:
    """(edges as (source, target, event), the initial state, the terminal states)."""
    lines = diagram.splitlines()
    assert lines[0] == "stateDiagram-v2"
    edges: set[tuple[str, str, str]] = set()
    initial, terminal = "", set()
    for line in lines[1:]:
        match = _LINE.match(line)
        assert match, line
        source, target, events = match.groups()
        if source == "[*]":
            initial = target
        elif target == "[*]":
            terminal.add(source)
        else:
            edges |= {(source, target, e) for e in (events or "").split(", ")}
    return edges, initial, terminal


def _by_name() -> dict[str, Machine]:
    return {machine.name: machine for machine in machines()}


@pytest.mark.parametrize("path", sorted(files(DOCS / "diagrams")), ids=lambda p: p.name)
def test_committed_diagrams_match_the_tables(path: Path) -> None:
    expected = files(DOCS / "diagrams")[path]()
    assert path.exists(), f"{path.relative_to(DOCS.parent)} is missing: run `make docs`"
    assert path.read_text(encoding="utf-8") == expected, (
        f"{path.relative_to(DOCS.parent)} is stale: run `make docs` and commit the result"
    )


def test_main_writes_every_file(tmp_path: Path) -> None:
    assert main(["diagrams", str(tmp_path / "diagrams")]) == 0
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert written == {
        "diagrams/session.mmd", "diagrams/candidate.mmd", "diagrams/attempt.mmd",
        "state-machines.md",
    }  # fmt: skip
    assert main(["diagrams"]) == 2


def test_the_session_diagram_covers_every_move() -> None:
    edges, initial, terminal = _parse(render_mermaid(_by_name()["session"]))
    moves = {(s.value, t.value, e.value) for (s, e), t in SESSION_TRANSITIONS.items() if s != t}
    assert edges == moves
    assert initial == "discovering"
    assert terminal == {"closed"}


def test_the_candidate_diagram_covers_every_move() -> None:
    edges, initial, terminal = _parse(render_mermaid(_by_name()["candidate"]))
    moves = {(s.value, t.value, e.value) for (s, e), t in CANDIDATE_TRANSITIONS.items() if s != t}
    assert edges == moves
    assert initial == "discovered"
    # `failed` is not an end: a retry takes the device back to provisioning.
    assert terminal == {"verified"}


def test_the_attempt_diagram_covers_every_move() -> None:
    edges, initial, terminal = _parse(render_mermaid(_by_name()["attempt"]))
    assert edges == {(s.value, t.value, "") for s, t in ATTEMPT_TRANSITIONS}
    assert initial == "prepared"
    assert terminal == {"verified", "failed"}


def test_self_loops_are_listed_on_the_page_not_drawn() -> None:
    page = files(DOCS / "diagrams")[DOCS / "state-machines.md"]()
    loops = {(s.value, e.value) for (s, e), t in SESSION_TRANSITIONS.items() if s == t}
    assert loops
    for state, event in loops:
        assert f"`{event}` in `{state}`" in page
        assert f"    {state} --> {state}" not in page
    assert "`skip` in `failed`" in page
    assert page.count("```mermaid") == len(machines())
    assert "make docs" in page.split("##")[0]
    assert "(architecture.md)" in page


def test_several_events_on_one_move_share_a_line() -> None:
    machine = Machine(
        name="m", title="M", summary="", source="", states=("a", "b"), initial="a",
        edges=(Edge("a", "b", "y"), Edge("a", "b", "x"), Edge("b", "b", "z")),
    )  # fmt: skip
    assert (
        render_mermaid(machine)
        == "stateDiagram-v2\n    [*] --> a\n    a --> b: x, y\n    b --> [*]\n"
    )
