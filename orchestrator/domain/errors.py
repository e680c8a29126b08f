"""The error-code registry (contract section 5) and the one error root of the package.

Every failure that reaches a client is an `OrchestratorError` carrying one of these codes;
the API renders it through `ERROR_SPECS`, so status and retryability are decided here once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ErrorCode(StrEnum):
    """Machine-readable error codes. Values are on the wire: never rename them."""

    SESSION_NOT_FOUND = "SESSION_NOT_FOUND"
    SESSION_EXPIRED = "SESSION_EXPIRED"
    SESSION_ALREADY_ACTIVE = "SESSION_ALREADY_ACTIVE"
    SESSION_ALREADY_CLOSED = "SESSION_ALREADY_CLOSED"
    SESSION_NOT_RECOVERABLE = "SESSION_NOT_RECOVERABLE"
    DEVICE_NOT_FOUND = "DEVICE_NOT_FOUND"
    DEVICE_NOT_IN_ALLOWLIST = "DEVICE_NOT_IN_ALLOWLIST"
    DEVICE_ALREADY_PROVISIONING = "DEVICE_ALREADY_PROVISIONING"
    DEVICE_INVALID_STATE = "DEVICE_INVALID_STATE"
    MAX_RETRIES_EXCEEDED = "MAX_RETRIES_EXCEEDED"
    TOTP_INVALID = "TOTP_INVALID"
    TOTP_EXPIRED = "TOTP_EXPIRED"
    RATE_LIMITED = "RATE_LIMITED"
    UNAUTHORIZED = "UNAUTHORIZED"
    DEVICE_UNREACHABLE = "DEVICE_UNREACHABLE"
    DEVICE_REJECTED = "DEVICE_REJECTED"
    DEVICE_TIMEOUT = "DEVICE_TIMEOUT"
    CIRCUIT_OPEN = "CIRCUIT_OPEN"
    VERIFICATION_TIMEOUT = "VERIFICATION_TIMEOUT"
    NETWORK_ERROR = "NETWORK_ERROR"
    MQTT_UNAVAILABLE = "MQTT_UNAVAILABLE"
    DATABASE_ERROR = "DATABASE_ERROR"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    VALIDATION_FAILED = "VALIDATION_FAILED"
    INVALID_REQUEST = "INVALID_REQUEST"
    MISSING_PARAMETER = "MISSING_PARAMETER"


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """How a code travels over HTTP: its status, and whether a client may try again."""

    http_status: int
    retryable: bool
    retry_after_s: int | None = None


ERROR_SPECS: dict[ErrorCode, ErrorSpec] = {
    ErrorCode.SESSION_NOT_FOUND: ErrorSpec(404, retryable=False),
    ErrorCode.SESSION_EXPIRED: ErrorSpec(410, retryable=False),
    ErrorCode.SESSION_ALREADY_ACTIVE: ErrorSpec(409, retryable=False),
    ErrorCode.SESSION_ALREADY_CLOSED: ErrorSpec(409, retryable=False),
    ErrorCode.SESSION_NOT_RECOVERABLE: ErrorSpec(409, retryable=False),
    ErrorCode.DEVICE_NOT_FOUND: ErrorSpec(404, retryable=False),
    ErrorCode.DEVICE_NOT_IN_ALLOWLIST: ErrorSpec(403, retryable=False),
    ErrorCode.DEVICE_ALREADY_PROVISIONING: ErrorSpec(409, retryable=False),
    ErrorCode.DEVICE_INVALID_STATE: ErrorSpec(409, retryable=False),
    ErrorCode.MAX_RETRIES_EXCEEDED: ErrorSpec(409, retryable=False),
    ErrorCode.TOTP_INVALID: ErrorSpec(401, retryable=True),
    ErrorCode.TOTP_EXPIRED: ErrorSpec(401, retryable=True),
    ErrorCode.RATE_LIMITED: ErrorSpec(429, retryable=True, retry_after_s=30),
    ErrorCode.UNAUTHORIZED: ErrorSpec(401, retryable=False),
    ErrorCode.DEVICE_UNREACHABLE: ErrorSpec(502, retryable=True),
    ErrorCode.DEVICE_REJECTED: ErrorSpec(502, retryable=True),
    ErrorCode.DEVICE_TIMEOUT: ErrorSpec(504, retryable=True),
    ErrorCode.CIRCUIT_OPEN: ErrorSpec(503, retryable=True),
    ErrorCode.VERIFICATION_TIMEOUT: ErrorSpec(504, retryable=True),
    ErrorCode.NETWORK_ERROR: ErrorSpec(503, retryable=True),
    ErrorCode.MQTT_UNAVAILABLE: ErrorSpec(503, retryable=True),
    ErrorCode.DATABASE_ERROR: ErrorSpec(500, retryable=False),
    ErrorCode.INTERNAL_ERROR: ErrorSpec(500, retryable=False),
    ErrorCode.VALIDATION_FAILED: ErrorSpec(400, retryable=False),
    ErrorCode.INVALID_REQUEST: ErrorSpec(400, retryable=False),
    ErrorCode.MISSING_PARAMETER: ErrorSpec(400, retryable=False),
}


class OrchestratorError(Exception):
    """The one error root: a contract code, a human message, optional structured context.

    `details` is a plain string because the wire contract says so; it must never carry a secret.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        details: str | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details
        self.retry_after_s = retry_after_s

    @property
    def spec(self) -> ErrorSpec:
        """The transport rules of this error's code."""
        return ERROR_SPECS[self.code]
