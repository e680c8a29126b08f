"""The V1 response envelope (contract section 1) and the correlation id that ties a request's
response, log lines and audit entries together."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Generic, TypeVar

import msgspec
from litestar import Response
from litestar.types import Scope

from orchestrator.context import correlation_id_var

T = TypeVar("T")

CORRELATION_HEADER = "X-Correlation-ID"
_STATE_KEY = "correlation_id"
_MAX_INCOMING_ID = 128


class Success(msgspec.Struct, Generic[T], frozen=True, kw_only=True):
    """`{"success": true, "data": ..., "correlation_id", "timestamp"}`."""

    success: bool
    data: T
    correlation_id: str
    timestamp: datetime


class ErrorBody(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The `error` object of a failed response; `details` is always a string."""

    code: str
    message: str
    retryable: bool
    retry_after_seconds: int | None = None
    details: str | None = None


class ErrorEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    """A failed response. `code` repeats `error.code` at the top level: the dashboard reads
    only that one on non-2xx answers."""

    success: bool
    error: ErrorBody
    code: str
    correlation_id: str
    timestamp: datetime


def _valid_incoming(value: str) -> bool:
    # Accept a client's id only when it is harmless to echo into headers and logs.
    return 0 < len(value) <= _MAX_INCOMING_ID and all(c.isalnum() or c in "-_." for c in value)


def correlation_id_for(scope: Scope) -> str:
    """The request's correlation id: remembered in the scope once chosen, taken from a valid
    incoming header, else a fresh UUID4."""
    state = scope.setdefault("state", {})
    existing = state.get(_STATE_KEY)
    if isinstance(existing, str):
        return existing
    incoming = next(
        (v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"x-correlation-id"),
        "",
    )
    chosen = incoming if _valid_incoming(incoming) else str(uuid.uuid4())
    state[_STATE_KEY] = chosen
    return chosen


def now_utc() -> datetime:
    """Envelope timestamps are wall-clock UTC."""
    return datetime.now(UTC)


def ok(data: T, status_code: int = 200) -> Response[Success[T]]:
    """A success envelope around `data`."""
    envelope = Success(
        success=True,
        data=data,
        correlation_id=correlation_id_var.get() or str(uuid.uuid4()),
        timestamp=now_utc(),
    )
    return Response(envelope, status_code=status_code)
