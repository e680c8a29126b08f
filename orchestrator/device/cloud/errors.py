"""Why a cloud registration failed: the seed's error types, one code per cause, and one
error root whose messages say what to do (and never carry a key, secret or token)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import NamedTuple

from orchestrator.device.errors import AgentError


class ErrorType(StrEnum):
    """The seed's error categories. Values are reported to the orchestrator: never rename."""

    NETWORK = "NETWORK"
    """Connection, timeout, DNS resolution failures."""
    AUTH = "AUTH"
    """Invalid provisioning credentials, refused tokens."""
    VALIDATION = "VALIDATION"
    """Malformed JSON, missing fields, invalid values (ours or the server's)."""
    SERVER = "SERVER"
    """The server refused or failed the request (e.g. the device name is taken)."""


class ErrorCode(StrEnum):
    """One code per cause. Values are reported to the orchestrator: never rename them."""

    PROVISION_JSON_MISSING = "provision_json_missing"
    PROVISION_JSON_INVALID = "provision_json_invalid"
    UNSUPPORTED_PROVIDER = "unsupported_provider"
    CONFIG_INVALID = "config_invalid"
    """thermal_config.json is not a JSON object (or not readable)."""
    CONFIG_READ_ONLY = "config_read_only"
    CONFIG_WRITE_FAILED = "config_write_failed"
    SERVER_UNREACHABLE = "server_unreachable"
    """No connection; nothing was sent."""
    CONNECTION_LOST = "connection_lost"
    """The connection broke after the request may have gone out."""
    NO_ANSWER = "no_answer"
    """The request went out; no answer came in time."""
    SESSION_REFUSED = "session_refused"
    """The server refused the `provision` session itself."""
    PROVISION_NOT_FOUND = "provision_not_found"
    """ThingsBoard's NOT_FOUND: unknown key, wrong secret, or provisioning disabled."""
    PROVISION_FAILURE = "provision_failure"
    """ThingsBoard's FAILURE: the device name is taken, or another refusal."""
    ANSWER_INVALID = "answer_invalid"
    TOKEN_REFUSED = "token_refused"  # noqa: S105 - a cause, not a secret
    """The new token was refused on its first CONNECT (FR-012)."""
    NOT_PROVISIONED = "not_provisioned"
    """No provision.txt and no stored credentials."""
    STORED_TOKEN_REFUSED = "stored_token_refused"  # noqa: S105 - a cause, not a secret


class Classification(NamedTuple):
    """The seed's error type of a code, and whether the network retry policy applies."""

    error_type: ErrorType
    retryable: bool


CLASSIFICATION: Mapping[ErrorCode, Classification] = MappingProxyType(
    {
        ErrorCode.PROVISION_JSON_MISSING: Classification(ErrorType.VALIDATION, retryable=False),
        ErrorCode.PROVISION_JSON_INVALID: Classification(ErrorType.VALIDATION, retryable=False),
        ErrorCode.UNSUPPORTED_PROVIDER: Classification(ErrorType.VALIDATION, retryable=False),
        ErrorCode.CONFIG_INVALID: Classification(ErrorType.VALIDATION, retryable=False),
        ErrorCode.CONFIG_READ_ONLY: Classification(ErrorType.VALIDATION, retryable=False),
        ErrorCode.CONFIG_WRITE_FAILED: Classification(ErrorType.VALIDATION, retryable=False),
        ErrorCode.SERVER_UNREACHABLE: Classification(ErrorType.NETWORK, retryable=True),
        ErrorCode.CONNECTION_LOST: Classification(ErrorType.NETWORK, retryable=True),
        ErrorCode.NO_ANSWER: Classification(ErrorType.NETWORK, retryable=True),
        ErrorCode.SESSION_REFUSED: Classification(ErrorType.SERVER, retryable=False),
        ErrorCode.PROVISION_NOT_FOUND: Classification(ErrorType.AUTH, retryable=False),
        ErrorCode.PROVISION_FAILURE: Classification(ErrorType.SERVER, retryable=False),
        ErrorCode.ANSWER_INVALID: Classification(ErrorType.VALIDATION, retryable=False),
        ErrorCode.TOKEN_REFUSED: Classification(ErrorType.AUTH, retryable=False),
        ErrorCode.NOT_PROVISIONED: Classification(ErrorType.VALIDATION, retryable=False),
        ErrorCode.STORED_TOKEN_REFUSED: Classification(ErrorType.AUTH, retryable=False),
    }
)
"""Every code's type; NETWORK codes alone are retried (1 s, 2 s, 4 s)."""


class CloudError(AgentError):
    """Root of every error of the cloud registration; `code` says which cause."""

    def __init__(self, code: ErrorCode, message: str, *, attempts: int = 1) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.attempts = attempts

    @property
    def error_type(self) -> ErrorType:
        """The seed's category of this error."""
        return CLASSIFICATION[self.code].error_type

    @property
    def retryable(self) -> bool:
        """Whether the network retry policy applies."""
        return CLASSIFICATION[self.code].retryable
