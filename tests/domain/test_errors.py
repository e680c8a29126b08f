"""The error registry matches contract section 5, code for code."""

from __future__ import annotations

import pytest

from orchestrator.domain.errors import ERROR_SPECS, ErrorCode, OrchestratorError

# Contract section 5, copied literally: code, HTTP status, retryable. Edit it only together
# with the contract.
CONTRACT_SECTION_5: dict[str, tuple[int, bool]] = {
    "SESSION_NOT_FOUND": (404, False),
    "SESSION_EXPIRED": (410, False),
    "SESSION_ALREADY_ACTIVE": (409, False),
    "SESSION_ALREADY_CLOSED": (409, False),
    "SESSION_NOT_RECOVERABLE": (409, False),
    "DEVICE_NOT_FOUND": (404, False),
    "DEVICE_NOT_IN_ALLOWLIST": (403, False),
    "DEVICE_ALREADY_PROVISIONING": (409, False),
    "DEVICE_INVALID_STATE": (409, False),
    "MAX_RETRIES_EXCEEDED": (409, False),
    "TOTP_INVALID": (401, True),
    "TOTP_EXPIRED": (401, True),
    "RATE_LIMITED": (429, True),
    "UNAUTHORIZED": (401, False),
    "DEVICE_UNREACHABLE": (502, True),
    "DEVICE_REJECTED": (502, True),
    "DEVICE_TIMEOUT": (504, True),
    "CIRCUIT_OPEN": (503, True),
    "VERIFICATION_TIMEOUT": (504, True),
    "NETWORK_ERROR": (503, True),
    "MQTT_UNAVAILABLE": (503, True),
    "DATABASE_ERROR": (500, False),
    "INTERNAL_ERROR": (500, False),
    "VALIDATION_FAILED": (400, False),
    "INVALID_REQUEST": (400, False),
    "MISSING_PARAMETER": (400, False),
}


def test_the_enum_holds_exactly_the_contract_codes() -> None:
    assert len(ErrorCode) == len(CONTRACT_SECTION_5) == 26
    assert {code.value for code in ErrorCode} == set(CONTRACT_SECTION_5)


def test_code_values_are_their_names() -> None:
    # The value is what goes on the wire; the name is what the code base reads.
    assert all(code.value == code.name for code in ErrorCode)


def test_the_registry_covers_every_code_exactly_once() -> None:
    assert len(ERROR_SPECS) == len(ErrorCode)
    assert set(ERROR_SPECS) == set(ErrorCode)
    assert all(isinstance(key, ErrorCode) for key in ERROR_SPECS)


@pytest.mark.parametrize(("code", "expected"), sorted(CONTRACT_SECTION_5.items()))
def test_status_and_retryability_follow_the_contract(code: str, expected: tuple[int, bool]) -> None:
    spec = ERROR_SPECS[ErrorCode(code)]
    assert (spec.http_status, spec.retryable) == expected


def test_only_rate_limited_carries_a_retry_after_of_30_seconds() -> None:
    assert ERROR_SPECS[ErrorCode.RATE_LIMITED].retry_after_s == 30
    others = {code for code, spec in ERROR_SPECS.items() if spec.retry_after_s is not None}
    assert others == {ErrorCode.RATE_LIMITED}


def test_orchestrator_error_carries_its_fields_and_spec() -> None:
    exc = OrchestratorError(
        ErrorCode.DEVICE_TIMEOUT, "device did not answer", details="after 10 s", retry_after_s=5
    )
    assert exc.code is ErrorCode.DEVICE_TIMEOUT
    assert exc.message == "device did not answer"
    assert exc.details == "after 10 s"
    assert exc.retry_after_s == 5
    assert exc.spec is ERROR_SPECS[ErrorCode.DEVICE_TIMEOUT]
    assert str(exc) == "DEVICE_TIMEOUT: device did not answer"


def test_orchestrator_error_optional_fields_default_to_none() -> None:
    exc = OrchestratorError(ErrorCode.INTERNAL_ERROR, "boom")
    assert exc.details is None
    assert exc.retry_after_s is None
    assert exc.spec.http_status == 500
