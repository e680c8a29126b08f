"""Console sign-in: POST /api/v1/auth/session trades an API key for an HttpOnly cookie."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, delete, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.params import JSONBody

from orchestrator.api.envelope import Success, ok
from orchestrator.api.errors import error_specs
from orchestrator.api.state import Services
from orchestrator.api.streams import Streams
from orchestrator.domain.audit import Outcome
from orchestrator.domain.errors import ErrorCode, OrchestratorError
from orchestrator.security.console_sessions import COOKIE_NAME


class SignInRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The API key to sign in with."""

    api_key: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class SignedIn(msgspec.Struct, frozen=True, kw_only=True):
    """Who is signed in (the key's id and name, never the key)."""

    key_id: str
    name: str
    expires_at: datetime


class SignedOut(msgspec.Struct, frozen=True, kw_only=True):
    """Confirmation of sign-out."""

    message: str


@post("/session", status_code=200, responses=error_specs(ErrorCode.UNAUTHORIZED))
async def sign_in(
    data: JSONBody[SignInRequest],
    services: NamedDependency[Services],
    streams: NamedDependency[Streams],
) -> Response[Success[SignedIn]]:
    """Check the key and set the console's session cookie (HttpOnly, SameSite=Strict)."""
    record = await services.api_keys.verify(data.api_key)
    if record is None:
        await services.auditor.record("auth.console", Outcome.DENIED, detail="bad API key")
        raise OrchestratorError(ErrorCode.UNAUTHORIZED, "unknown or revoked API key")
    token, session = streams.console_sessions.issue(record.id)
    await services.auditor.record("auth.console", actor=record.id)
    response = ok(SignedIn(key_id=record.id, name=record.name, expires_at=session.expires_at))
    # Cookie lifetimes are relative: litestar's `expires` counts seconds from now, like max-age.
    lifetime_s = max(0, int((session.expires_at - streams.clock()).total_seconds()))
    response.cookies.append(
        Cookie(
            key=COOKIE_NAME,
            value=token,
            httponly=True,
            samesite="strict",
            path="/",
            max_age=lifetime_s,
            expires=lifetime_s,
        )
    )
    return response


@delete("/session", status_code=200)
async def sign_out(
    request: Request[Any, Any, Any], streams: NamedDependency[Streams]
) -> Response[Success[SignedOut]]:
    """End the console session and clear its cookie."""
    token = request.cookies.get(COOKIE_NAME)
    if token:
        streams.console_sessions.end(token)
    response = ok(SignedOut(message="signed out"))
    response.delete_cookie(COOKIE_NAME, path="/")
    return response


HANDLERS = [sign_in, sign_out]
