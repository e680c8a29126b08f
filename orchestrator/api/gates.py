"""TOTP step-up gates on sensitive routes (contract section 6).

`guards=[require_step_up(GatedOperation.X)]` on a handler makes it need a fresh code in
`X-TOTP-Code` or a token in `X-Step-Up-Token` whenever configuration gates X. It runs after
the router's API key guard, so the actor is already known.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from orchestrator.api.state import services_of
from orchestrator.context import actor_var
from orchestrator.domain.errors import ErrorCode
from orchestrator.domain.totp import GatedOperation
from orchestrator.security.stepup import STEP_UP_TOKEN_HEADER, TOTP_CODE_HEADER

STEP_UP_ERRORS = (
    ErrorCode.UNAUTHORIZED,
    ErrorCode.TOTP_INVALID,
    ErrorCode.TOTP_EXPIRED,
    ErrorCode.RATE_LIMITED,
)
"""What a gated route may answer besides its own errors (for its OpenAPI responses)."""


def require_step_up(operation: GatedOperation) -> Guard:
    """A guard admitting `operation` only with step-up, when configuration gates it."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        step_up = services_of(connection.app).step_up
        if not step_up.is_gated(operation):
            return
        await step_up.check(
            actor_var.get(),
            operation,
            code=connection.headers.get(TOTP_CODE_HEADER),
            token=connection.headers.get(STEP_UP_TOKEN_HEADER),
        )

    guard.__name__ = f"require_step_up_{operation.name.lower()}"
    return guard
