"""Every failure becomes the error envelope: domain errors through the contract's registry,
framework errors (unknown route, wrong method, bad body) through the table below."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    ValidationException,
)
from litestar.openapi.datastructures import ResponseSpec

from orchestrator.api.envelope import ErrorBody, ErrorEnvelope, correlation_id_for, now_utc
from orchestrator.context import correlation_id_var
from orchestrator.domain.errors import ERROR_SPECS, ErrorCode, OrchestratorError
from orchestrator.ports.storage import StorageError

log = logging.getLogger(__name__)


def error_response(
    code: ErrorCode,
    message: str,
    *,
    correlation_id: str,
    details: str | None = None,
    status_code: int | None = None,
    retry_after_s: int | None = None,
) -> Response[ErrorEnvelope]:
    """The envelope for `code`; status and retryability come from the registry."""
    spec = ERROR_SPECS[code]
    retry_after = retry_after_s if retry_after_s is not None else spec.retry_after_s
    body = ErrorEnvelope(
        success=False,
        error=ErrorBody(
            code=code,
            message=message,
            retryable=spec.retryable,
            retry_after_seconds=retry_after,
            details=details,
        ),
        code=code,
        correlation_id=correlation_id,
        timestamp=now_utc(),
    )
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return Response(body, status_code=status_code or spec.http_status, headers=headers)


def handle_exception(  # noqa: PLR0911 - one return per kind of failure reads best as a table
    request: Request[Any, Any, Any], exc: Exception
) -> Response[ErrorEnvelope]:
    """The app-wide exception handler (it also sees router 404/405 and validation errors)."""
    cid = correlation_id_var.get() or correlation_id_for(request.scope)
    match exc:
        case OrchestratorError():
            return error_response(
                exc.code,
                exc.message,
                correlation_id=cid,
                details=exc.details,
                retry_after_s=exc.retry_after_s,
            )
        case NotFoundException():
            return error_response(
                ErrorCode.INVALID_REQUEST,
                f"no such endpoint: {request.method} {request.url.path}",
                correlation_id=cid,
                status_code=404,
            )
        case MethodNotAllowedException():
            return error_response(
                ErrorCode.INVALID_REQUEST,
                f"{request.method} is not allowed on {request.url.path}",
                correlation_id=cid,
                status_code=405,
            )
        case ValidationException():
            return _validation_response(exc, cid)
        case HTTPException() if exc.status_code < 500:
            # Malformed JSON and other client mistakes the framework catches itself.
            return error_response(
                ErrorCode.INVALID_REQUEST,
                "the request could not be read",
                correlation_id=cid,
                details=str(exc.detail)[:300],
            )
        case StorageError():
            log.error("storage failure: %s", exc)
            return error_response(
                ErrorCode.DATABASE_ERROR, "the appliance database failed", correlation_id=cid
            )
        case _:
            log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
            return error_response(
                ErrorCode.INTERNAL_ERROR,
                "internal error; see the appliance log",
                correlation_id=cid,
            )


def _validation_response(exc: ValidationException, cid: str) -> Response[ErrorEnvelope]:
    problems = exc.extra if isinstance(exc.extra, list) else []
    parts: list[str] = []
    missing = False
    for problem in problems:
        if not isinstance(problem, dict):
            continue
        text = str(problem.get("message", "invalid value"))
        key = problem.get("key")
        missing = missing or "missing required" in text.lower()
        parts.append(f"{key}: {text}" if key else text)
    details = "; ".join(parts) or str(exc.detail)
    code = ErrorCode.MISSING_PARAMETER if missing else ErrorCode.VALIDATION_FAILED
    return error_response(code, "the request is not valid", correlation_id=cid, details=details)


def error_specs(*codes: ErrorCode) -> dict[int, ResponseSpec]:
    """OpenAPI responses for `codes` (plus the errors every route can answer), all documented
    as the error envelope."""
    every_route = (ErrorCode.VALIDATION_FAILED, ErrorCode.INVALID_REQUEST, ErrorCode.INTERNAL_ERROR)
    by_status: dict[int, list[str]] = {}
    for code in dict.fromkeys((*codes, *every_route)):
        by_status.setdefault(ERROR_SPECS[code].http_status, []).append(code)
    return {
        status: ResponseSpec(
            data_container=ErrorEnvelope,
            description="Error envelope; error.code is one of: " + ", ".join(names),
            generate_examples=False,
        )
        for status, names in sorted(by_status.items())
    }
