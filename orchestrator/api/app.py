"""The litestar application: routers, the key gate, the envelope for every answer."""

from __future__ import annotations

from collections.abc import Sequence

from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.datastructures import MutableScopeHeaders, State
from litestar.di import Provide
from litestar.enums import ScopeType
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.api.auth import API_KEY_HEADER, require_api_key
from orchestrator.api.envelope import CORRELATION_HEADER, correlation_id_for
from orchestrator.api.errors import handle_exception
from orchestrator.api.routes import (
    allowlist,
    audit,
    auth,
    batch,
    console,
    console_session,
    events,
    health,
    metrics,
    pairing,
    report,
    sessions,
)
from orchestrator.api.state import Services, state_for
from orchestrator.api.streams import STATE_KEY as STREAMS_KEY
from orchestrator.api.streams import Streams
from orchestrator.context import correlation_id_var
from orchestrator.security.stepup import STEP_UP_TOKEN_HEADER, TOTP_CODE_HEADER

API_TITLE = "Delicasa orchestrator: PiOrchestrator V1 API"

CORS_ALLOW_HEADERS = (
    "Content-Type",
    API_KEY_HEADER,
    TOTP_CODE_HEADER,
    STEP_UP_TOKEN_HEADER,
    CORRELATION_HEADER,
    "Last-Event-ID",
)
"""Request headers a page from an allowed origin may send."""
CORS_EXPOSE_HEADERS = (CORRELATION_HEADER, "Retry-After", "Content-Disposition")
"""Response headers such a page may read."""


def _cors(origins: Sequence[str]) -> CORSConfig | None:
    """CORS for pages served from `origins`; None (no CORS headers at all) when empty.

    Preflights are answered before routing, so they need no key; every real request still
    goes through the key gate. Credentials (cookies) are not allowed: cross-origin clients
    send `X-API-Key`.
    """
    if not origins:
        return None
    return CORSConfig(
        allow_origins=list(origins),
        allow_methods=["GET", "POST", "PATCH", "DELETE"],
        allow_headers=list(CORS_ALLOW_HEADERS),
        expose_headers=list(CORS_EXPOSE_HEADERS),
    )


def _correlation_middleware(app: ASGIApp) -> ASGIApp:
    """Bind the request's correlation id to the context, for log lines and audit entries."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        token = correlation_id_var.set(correlation_id_for(scope))
        try:
            await app(scope, receive, send)
        finally:
            correlation_id_var.reset(token)

    return middleware


async def _add_correlation_header(message: Message, scope: Scope) -> None:
    # before_send runs even for router-level 404/405, which skip middleware.
    if message["type"] == "http.response.start":
        MutableScopeHeaders.from_message(message)[CORRELATION_HEADER] = correlation_id_for(scope)


def create_app(
    services: Services, streams: Streams, *, version: str, cors_origins: Sequence[str] = ()
) -> Litestar:
    """The V1 API over `services`, with the event stream fed by `streams`; pages served from
    `cors_origins` may call it from the browser."""
    provisioning = Router(
        "/api/v1/provisioning",
        guards=[require_api_key],
        route_handlers=[
            # `events` before `{session_id}`: literal paths are never captured by parameters.
            Router("/batch", route_handlers=[events.batch_events, *batch.HANDLERS]),
            Router("/allowlist", route_handlers=allowlist.HANDLERS),
            Router("/pairing", route_handlers=pairing.HANDLERS),
            Router("/sessions", route_handlers=sessions.HANDLERS),
            *report.HANDLERS,
            health.network_status,
            *audit.HANDLERS,
        ],
    )
    return Litestar(
        route_handlers=[
            health.health,
            metrics.metrics,
            provisioning,
            Router("/api/v1/auth", route_handlers=[*console_session.HANDLERS, *auth.HANDLERS]),
            *console.HANDLERS,
        ],
        dependencies={
            "services": Provide(lambda: services, sync_to_thread=False),
            "batches": Provide(lambda: services.batches, sync_to_thread=False),
            "allowlist": Provide(lambda: services.allowlist, sync_to_thread=False),
            "pairing": Provide(lambda: services.pairing, sync_to_thread=False),
            "streams": Provide(lambda: streams, sync_to_thread=False),
        },
        state=State({**state_for(services), STREAMS_KEY: streams}),
        middleware=[_correlation_middleware],
        before_send=[_add_correlation_header],
        cors_config=_cors(cors_origins),
        exception_handlers={Exception: handle_exception},
        openapi_config=OpenAPIConfig(
            title=API_TITLE,
            version=version,
            # The bundled docs UIs load scripts from CDNs; an offline Pi serves the JSON only
            # (at openapi.json and at the path itself). An empty list would mean "all of them".
            render_plugins=[JsonRenderPlugin()],
            path="/api/v1/openapi",
        ),
        # Logging belongs to the process (orchestrator.context.configure_logging), not the app.
        logging_config=None,
        debug=False,
    )
