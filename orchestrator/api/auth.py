"""The API key gate of every provisioning route (contract section 6)."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from orchestrator.api.state import services_of
from orchestrator.context import actor_var
from orchestrator.domain.audit import Outcome
from orchestrator.domain.errors import ErrorCode, OrchestratorError

API_KEY_HEADER = "X-API-Key"


async def require_api_key(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Admit a request carrying an active key in `X-API-Key`; remember its id as the actor.

    Failures are audited with what was wrong, never with what was presented.
    """
    services = services_of(connection.app)
    presented = connection.headers.get(API_KEY_HEADER)
    record = await services.api_keys.verify(presented) if presented else None
    if record is None:
        reason = "unknown or revoked API key" if presented else f"missing {API_KEY_HEADER}"
        await services.auditor.record(
            "auth.api_key", Outcome.DENIED, detail=f"{reason} on {connection.url.path}"
        )
        raise OrchestratorError(ErrorCode.UNAUTHORIZED, f"{reason}; send a valid {API_KEY_HEADER}")
    actor_var.set(record.id)
