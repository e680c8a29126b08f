"""Step-up routes: /api/v1/auth/step-up trades a TOTP code for a short-lived token, and
/api/v1/auth/status tells a client which credentials it needs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from orchestrator.api.auth import require_api_key
from orchestrator.api.envelope import Success, ok
from orchestrator.api.errors import error_specs
from orchestrator.api.gates import STEP_UP_ERRORS
from orchestrator.api.state import Services
from orchestrator.context import actor_var


class StepUpRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The current code of the appliance's authenticator entry."""

    code: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]


class StepUpData(msgspec.Struct, frozen=True, kw_only=True):
    """A step-up token (shown this once) for `X-Step-Up-Token`, and when it expires."""

    token: str
    expires_at: datetime
    expires_in_seconds: int


class AuthStatusData(msgspec.Struct, frozen=True, kw_only=True):
    """What a client must send: an API key always; TOTP step-up for the listed operations."""

    api_key_required: bool
    totp_enrolled: bool
    totp_required_for: list[str]


@post(
    "/step-up",
    status_code=200,
    guards=[require_api_key],
    responses=error_specs(*STEP_UP_ERRORS),
    summary="Trade a TOTP code for a step-up token",
)
async def step_up(
    data: JSONBody[StepUpRequest], services: NamedDependency[Services]
) -> Response[Success[StepUpData]]:
    """Accept a fresh TOTP code (once) and issue a token that stands in for codes on the
    gated operations until it expires."""
    issued = await services.step_up.step_up(actor_var.get(), data.code)
    response = ok(
        StepUpData(
            token=issued.token,
            expires_at=issued.expires_at,
            expires_in_seconds=services.step_up.token_ttl_s,
        )
    )
    # The token is a credential: no cache on the way may keep it.
    response.headers["Cache-Control"] = "no-store"
    return response


@get("/status", summary="Which credentials the API needs (no API key)")
async def auth_status(services: NamedDependency[Services]) -> Response[Success[AuthStatusData]]:
    """Whether TOTP is enrolled and which operations need step-up."""
    return ok(
        AuthStatusData(
            api_key_required=True,
            totp_enrolled=await services.step_up.is_enrolled(),
            totp_required_for=sorted(services.step_up.required_for),
        )
    )


HANDLERS = [step_up, auth_status]
