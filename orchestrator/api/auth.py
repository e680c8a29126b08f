"""The API key gate of every provisioning route (contract section 6).

Routes answer only requests with an active key in `X-API-Key`. The event stream also accepts
the key as `?api_key=` or the console's session cookie, because browsers' EventSource cannot
send headers; a setting can open it to clients with no credential at all.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from orchestrator.api.state import services_of
from orchestrator.api.streams import streams_of
from orchestrator.context import ANONYMOUS, actor_var
from orchestrator.domain.apikey import ApiKeyRecord
from orchestrator.domain.audit import Outcome
from orchestrator.domain.errors import ErrorCode, OrchestratorError
from orchestrator.security.console_sessions import COOKIE_NAME

API_KEY_HEADER = "X-API-Key"
API_KEY_QUERY = "api_key"
STREAM_CREDENTIALS = {"credentials": "stream"}
"""Handler `opt` of routes that take the stream's extra credential sources."""


async def require_api_key(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Admit a request carrying an active key; remember its id as the actor.

    Failures are audited with what was wrong, never with what was presented.
    """
    services = services_of(connection.app)
    is_stream = handler.opt.get("credentials") == STREAM_CREDENTIALS["credentials"]
    presented = connection.headers.get(API_KEY_HEADER)
    if presented is None and is_stream:
        presented = connection.query_params.get(API_KEY_QUERY)
    record = await services.api_keys.verify(presented) if presented else None
    if record is None and presented is None and is_stream:
        record, cookie_sent = await _console_session(connection)
        if record is None and not cookie_sent and streams_of(connection.app).allow_anonymous:
            actor_var.set(ANONYMOUS)
            return
    if record is None:
        reason = "unknown or revoked API key" if presented else f"missing {API_KEY_HEADER}"
        await services.auditor.record(
            "auth.api_key", Outcome.DENIED, detail=f"{reason} on {connection.url.path}"
        )
        raise OrchestratorError(ErrorCode.UNAUTHORIZED, f"{reason}; send a valid {API_KEY_HEADER}")
    actor_var.set(record.id)


async def _console_session(
    connection: ASGIConnection[Any, Any, Any, Any],
) -> tuple[ApiKeyRecord | None, bool]:
    """The key behind the console cookie (None if absent, expired or revoked), and whether a
    cookie was sent at all."""
    token = connection.cookies.get(COOKIE_NAME)
    if not token:
        return None, False
    session = streams_of(connection.app).console_sessions.check(token)
    if session is None:
        return None, True
    return await services_of(connection.app).api_keys.active(session.key_id), True
