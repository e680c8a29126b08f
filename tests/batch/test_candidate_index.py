"""The driven session's running tally of candidate states agrees with a recount."""

from __future__ import annotations

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.batch.registry import CandidateIndex, Driven
from orchestrator.domain.candidate import CandidateState
from orchestrator.domain.session import SessionCounts, SessionSnapshot
from tests.storage.samples import make_candidate, make_session

changes = st.lists(
    st.tuples(st.integers(min_value=1, max_value=8), st.sampled_from(CandidateState) | st.none()),
    max_size=60,
)


@given(changes)
def test_the_tally_always_equals_a_recount(steps: list[tuple[int, CandidateState | None]]) -> None:
    index = CandidateIndex()
    for n, state in steps:
        candidate = make_candidate(n=n)
        if state is None:
            if candidate.mac in index:
                del index[candidate.mac]
        else:
            index[candidate.mac] = msgspec.structs.replace(candidate, state=state)
    assert SessionCounts.of_states(index.states) == SessionCounts.of(index.values())


def test_a_driven_session_snapshots_from_the_tally() -> None:
    candidates = {c.mac: c for c in (make_candidate(n=n) for n in range(1, 4))}
    driven = Driven(session=make_session(), candidates=candidates)
    assert isinstance(driven.candidates, CandidateIndex)
    assert driven.snapshot() == SessionSnapshot.of(driven.session, candidates.values())
    first = next(iter(candidates))
    driven.candidates[first] = msgspec.structs.replace(
        candidates[first], state=CandidateState.VERIFIED
    )
    assert driven.snapshot().verified_count == 1
