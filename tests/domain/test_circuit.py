"""The per-device circuit breaker."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.domain.circuit import BreakerRules, Circuit, after_failure, after_success, allows

RULES = BreakerRules(failures_to_open=3, open_s=10.0)


def test_it_opens_at_the_threshold_and_half_opens_after_the_cool_down() -> None:
    circuit = Circuit()
    for now in (0.0, 1.0):
        circuit = after_failure(circuit, now, RULES)
        assert allows(circuit, now)
    circuit = after_failure(circuit, 2.0, RULES)
    assert not allows(circuit, 2.0)
    assert not allows(circuit, 11.9)
    assert allows(circuit, 12.0)  # half-open: one trial
    reopened = after_failure(circuit, 12.0, RULES)
    assert not allows(reopened, 12.0)
    assert after_success(circuit) == Circuit()


@given(st.lists(st.booleans(), max_size=30))
def test_a_success_always_closes_it(outcomes: list[bool]) -> None:
    circuit = Circuit()
    for now, ok in enumerate(outcomes):
        circuit = after_success(circuit) if ok else after_failure(circuit, float(now), RULES)
    assert allows(after_success(circuit), 0.0)
    failures_in_a_row = 0
    for ok in reversed(outcomes):
        if ok:
            break
        failures_in_a_row += 1
    assert circuit.failures == failures_in_a_row
