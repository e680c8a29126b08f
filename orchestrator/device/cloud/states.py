"""The provisioning states of seed 001: one enum, the one table of moves between them, and the
failed state each error code ends in."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from orchestrator.device.cloud.errors import ErrorCode
from orchestrator.device.errors import IllegalTransitionError


class ProvisioningState(StrEnum):
    """Where a provisioning run is. Values are logged and reported: never rename them."""

    IDLE = "IDLE"
    DETECTING_FILES = "DETECTING_FILES"
    """Looking for provision.txt (and provision.json)."""
    LOADING_CONFIG = "LOADING_CONFIG"
    """Reading provision.json and checking that thermal_config.json can be updated."""
    CONNECTING = "CONNECTING"
    """Opening the `provision` session, or confirming a token from an earlier attempt."""
    SENDING_REQUEST = "SENDING_REQUEST"
    WAITING_RESPONSE = "WAITING_RESPONSE"
    VALIDATING_RESPONSE = "VALIDATING_RESPONSE"
    """Checking the answer, then proving the new token with one CONNECT (FR-012)."""
    UPDATING_CONFIG = "UPDATING_CONFIG"
    COMPLETED = "COMPLETED"
    FAILED_CONFIG = "FAILED_CONFIG"
    FAILED_CONNECTION = "FAILED_CONNECTION"
    FAILED_TIMEOUT = "FAILED_TIMEOUT"
    FAILED_VALIDATION = "FAILED_VALIDATION"
    FAILED_UPDATE = "FAILED_UPDATE"

    @property
    def terminal(self) -> bool:
        """Whether the run is over in this state."""
        return not TRANSITIONS[self]


_S = ProvisioningState
_NETWORK = frozenset({_S.FAILED_CONNECTION, _S.FAILED_TIMEOUT})

TRANSITIONS: Mapping[ProvisioningState, frozenset[ProvisioningState]] = MappingProxyType(
    {
        # No provision.txt: back to IDLE, the stored credentials are used.
        _S.IDLE: frozenset({_S.DETECTING_FILES}),
        _S.DETECTING_FILES: frozenset({_S.IDLE, _S.LOADING_CONFIG}),
        _S.LOADING_CONFIG: frozenset({_S.CONNECTING, _S.FAILED_CONFIG, _S.FAILED_UPDATE}),
        # A token confirmed from an earlier attempt skips the request.
        _S.CONNECTING: frozenset({_S.SENDING_REQUEST, _S.VALIDATING_RESPONSE} | _NETWORK),
        # Retries after a network failure start over at CONNECTING.
        _S.SENDING_REQUEST: frozenset({_S.WAITING_RESPONSE, _S.CONNECTING} | _NETWORK),
        _S.WAITING_RESPONSE: frozenset({_S.VALIDATING_RESPONSE, _S.CONNECTING} | _NETWORK),
        # Proving the new token is a CONNECT too: it may fail on the network.
        _S.VALIDATING_RESPONSE: frozenset(
            {_S.UPDATING_CONFIG, _S.FAILED_VALIDATION, _S.FAILED_UPDATE} | _NETWORK
        ),
        _S.UPDATING_CONFIG: frozenset({_S.COMPLETED, _S.FAILED_UPDATE}),
        _S.COMPLETED: frozenset(),
        _S.FAILED_CONFIG: frozenset(),
        _S.FAILED_CONNECTION: frozenset(),
        _S.FAILED_TIMEOUT: frozenset(),
        _S.FAILED_VALIDATION: frozenset(),
        _S.FAILED_UPDATE: frozenset(),
    }
)
"""The only moves there are; anything else raises IllegalTransitionError."""

FAILED_STATE: Mapping[ErrorCode, ProvisioningState] = MappingProxyType(
    {
        ErrorCode.PROVISION_JSON_MISSING: _S.FAILED_CONFIG,
        ErrorCode.PROVISION_JSON_INVALID: _S.FAILED_CONFIG,
        ErrorCode.UNSUPPORTED_PROVIDER: _S.FAILED_CONFIG,
        ErrorCode.CONFIG_INVALID: _S.FAILED_CONFIG,
        ErrorCode.CONFIG_READ_ONLY: _S.FAILED_UPDATE,
        ErrorCode.CONFIG_WRITE_FAILED: _S.FAILED_UPDATE,
        ErrorCode.SERVER_UNREACHABLE: _S.FAILED_CONNECTION,
        ErrorCode.CONNECTION_LOST: _S.FAILED_CONNECTION,
        ErrorCode.NO_ANSWER: _S.FAILED_TIMEOUT,
        ErrorCode.SESSION_REFUSED: _S.FAILED_CONNECTION,
        ErrorCode.PROVISION_NOT_FOUND: _S.FAILED_VALIDATION,
        ErrorCode.PROVISION_FAILURE: _S.FAILED_VALIDATION,
        ErrorCode.ANSWER_INVALID: _S.FAILED_VALIDATION,
        ErrorCode.TOKEN_REFUSED: _S.FAILED_VALIDATION,
    }
)
"""Where a provisioning run that fails with a code ends. The stored-credentials codes
(NOT_PROVISIONED, STORED_TOKEN_REFUSED) end no provisioning run: they are not here."""


def advance(current: ProvisioningState, target: ProvisioningState) -> ProvisioningState:
    """`target`, if the table allows moving there from `current`."""
    if target not in TRANSITIONS[current]:
        raise IllegalTransitionError(current.value, target.value)
    return target


def failed(current: ProvisioningState, code: ErrorCode) -> ProvisioningState:
    """The failed state a run in `current` ends in for `code`."""
    return advance(current, FAILED_STATE[code])


def mermaid() -> str:
    """The transition table as a Mermaid state diagram (for docs/)."""
    lines = ["stateDiagram-v2", f"    [*] --> {_S.IDLE.value}"]
    lines += [
        f"    {source.value} --> {target.value}"
        for source in ProvisioningState
        for target in sorted(TRANSITIONS[source], key=list(ProvisioningState).index)
    ]
    lines += [f"    {state.value} --> [*]" for state in ProvisioningState if state.terminal]
    return "\n".join(lines) + "\n"
