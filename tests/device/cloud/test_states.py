"""The provisioning states: one table, every failure mapped to a failed state and a type."""

from __future__ import annotations

import pytest

from orchestrator.device.cloud.errors import CLASSIFICATION, CloudError, ErrorCode, ErrorType
from orchestrator.device.cloud.states import (
    FAILED_STATE,
    TRANSITIONS,
    ProvisioningState,
    advance,
    failed,
    mermaid,
)
from orchestrator.device.errors import AgentError, IllegalTransitionError

S = ProvisioningState
HAPPY_PATH = [
    S.IDLE,
    S.DETECTING_FILES,
    S.LOADING_CONFIG,
    S.CONNECTING,
    S.SENDING_REQUEST,
    S.WAITING_RESPONSE,
    S.VALIDATING_RESPONSE,
    S.UPDATING_CONFIG,
    S.COMPLETED,
]
STORED_ONLY = {ErrorCode.NOT_PROVISIONED, ErrorCode.STORED_TOKEN_REFUSED}


def test_the_seed_path_is_allowed_step_by_step() -> None:
    state = HAPPY_PATH[0]
    for target in HAPPY_PATH[1:]:
        state = advance(state, target)
    assert state is S.COMPLETED


def test_the_states_are_the_seeds_and_their_values_are_their_names() -> None:
    assert {s.value for s in S} == {
        *(s.name for s in HAPPY_PATH),
        "FAILED_CONFIG",
        "FAILED_CONNECTION",
        "FAILED_TIMEOUT",
        "FAILED_VALIDATION",
        "FAILED_UPDATE",
    }
    assert all(s.value == s.name for s in S)


def test_terminal_states_are_completed_and_the_failures() -> None:
    assert {s for s in S if s.terminal} == {S.COMPLETED} | {s for s in S if s.startswith("FAILED")}


def test_an_illegal_move_raises_the_agents_named_error() -> None:
    with pytest.raises(IllegalTransitionError) as caught:
        advance(S.IDLE, S.COMPLETED)
    assert isinstance(caught.value, AgentError)
    assert (caught.value.current, caught.value.target) == ("IDLE", "COMPLETED")


def test_every_code_has_a_type_and_only_network_codes_are_retried() -> None:
    assert set(CLASSIFICATION) == set(ErrorCode)
    for code, kind in CLASSIFICATION.items():
        assert kind.retryable == (kind.error_type is ErrorType.NETWORK), code


@pytest.mark.parametrize(
    ("code", "error_type"),
    [
        (ErrorCode.PROVISION_NOT_FOUND, ErrorType.AUTH),
        (ErrorCode.PROVISION_FAILURE, ErrorType.SERVER),
        (ErrorCode.PROVISION_JSON_INVALID, ErrorType.VALIDATION),
        (ErrorCode.NO_ANSWER, ErrorType.NETWORK),
        (ErrorCode.TOKEN_REFUSED, ErrorType.AUTH),
    ],
)
def test_the_seeds_error_types(code: ErrorCode, error_type: ErrorType) -> None:
    error = CloudError(code, "why")
    assert error.error_type is error_type
    assert isinstance(error, AgentError)


def test_every_provisioning_code_ends_in_a_failed_state() -> None:
    assert set(FAILED_STATE) == set(ErrorCode) - STORED_ONLY
    assert all(state.terminal and state is not S.COMPLETED for state in FAILED_STATE.values())


@pytest.mark.parametrize(
    ("state", "code", "expected"),
    [
        (S.LOADING_CONFIG, ErrorCode.PROVISION_JSON_MISSING, S.FAILED_CONFIG),
        (S.LOADING_CONFIG, ErrorCode.CONFIG_READ_ONLY, S.FAILED_UPDATE),
        (S.LOADING_CONFIG, ErrorCode.CONFIG_WRITE_FAILED, S.FAILED_UPDATE),
        (S.CONNECTING, ErrorCode.SERVER_UNREACHABLE, S.FAILED_CONNECTION),
        (S.CONNECTING, ErrorCode.SESSION_REFUSED, S.FAILED_CONNECTION),
        (S.SENDING_REQUEST, ErrorCode.CONNECTION_LOST, S.FAILED_CONNECTION),
        (S.SENDING_REQUEST, ErrorCode.NO_ANSWER, S.FAILED_TIMEOUT),
        (S.WAITING_RESPONSE, ErrorCode.NO_ANSWER, S.FAILED_TIMEOUT),
        (S.WAITING_RESPONSE, ErrorCode.CONNECTION_LOST, S.FAILED_CONNECTION),
        (S.VALIDATING_RESPONSE, ErrorCode.PROVISION_NOT_FOUND, S.FAILED_VALIDATION),
        (S.VALIDATING_RESPONSE, ErrorCode.PROVISION_FAILURE, S.FAILED_VALIDATION),
        (S.VALIDATING_RESPONSE, ErrorCode.ANSWER_INVALID, S.FAILED_VALIDATION),
        (S.VALIDATING_RESPONSE, ErrorCode.TOKEN_REFUSED, S.FAILED_VALIDATION),
        (S.VALIDATING_RESPONSE, ErrorCode.SERVER_UNREACHABLE, S.FAILED_CONNECTION),
        (S.VALIDATING_RESPONSE, ErrorCode.CONFIG_WRITE_FAILED, S.FAILED_UPDATE),
        (S.UPDATING_CONFIG, ErrorCode.CONFIG_WRITE_FAILED, S.FAILED_UPDATE),
    ],
)
def test_each_failure_is_a_legal_move_from_where_it_happens(
    state: ProvisioningState, code: ErrorCode, expected: ProvisioningState
) -> None:
    assert failed(state, code) is expected


def test_retries_start_over_at_connecting() -> None:
    for state in (S.SENDING_REQUEST, S.WAITING_RESPONSE):
        assert S.CONNECTING in TRANSITIONS[state]


def test_the_mermaid_diagram_has_every_move() -> None:
    diagram = mermaid()
    moves = sum(len(targets) for targets in TRANSITIONS.values())
    assert diagram.startswith("stateDiagram-v2\n    [*] --> IDLE\n")
    assert diagram.count(" --> ") == 1 + moves + sum(1 for s in S if s.terminal)
    assert "    WAITING_RESPONSE --> CONNECTING\n" in diagram
