"""Pair-by-code routes: /api/v1/provisioning/pairing/...

A technician types the code a device shows; a live code puts that device on the allowlist.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Response, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from orchestrator.api.envelope import Success, ok
from orchestrator.api.errors import error_specs
from orchestrator.api.gates import STEP_UP_ERRORS, require_step_up
from orchestrator.api.schemas import AllowlistEntryMessage, Text
from orchestrator.batch.pairing import PairingService
from orchestrator.context import actor_var
from orchestrator.domain.allowlist import AllowlistEntryView
from orchestrator.domain.errors import ErrorCode
from orchestrator.domain.totp import GatedOperation


class PairingClaim(
    msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, forbid_unknown_fields=True
):
    """POST /pairing/claim: the code on the device's display, and the entry's details."""

    code: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=32,
            description="The 6-character code the device shows (any case, spaces around ignored)",
            examples=["KM9X3T"],
        ),
    ]
    description: Text | None = None
    container_id: Text | None = None


@post(
    "/claim",
    status_code=201,
    # Claiming a code puts a device on the allowlist: gated like every allowlist change.
    guards=[require_step_up(GatedOperation.ALLOWLIST_WRITE)],
    responses=error_specs(ErrorCode.DEVICE_NOT_FOUND, *STEP_UP_ERRORS),
    summary="Claim a pairing code: put the device showing it on the allowlist",
)
async def claim(
    data: JSONBody[PairingClaim], pairing: NamedDependency[PairingService]
) -> Response[Success[AllowlistEntryMessage]]:
    """Consume a live pairing code and add its device to the allowlist (an existing entry gets
    the description and container given). Repeating the request with the same API key
    before the code expires answers the same entry.

    Errors: VALIDATION_FAILED (not a code), DEVICE_NOT_FOUND (no device shows this code: unknown,
    expired or already claimed, deliberately not told apart), RATE_LIMITED (too many wrong codes
    from this API key or from all keys together; `retry_after_seconds` says when to try again).
    """
    entry = await pairing.claim(
        data.code,
        actor=actor_var.get(),
        description=data.description,
        container_id=data.container_id,
    )
    message = f"{entry.mac} paired: it is on the allowlist"
    return ok(AllowlistEntryMessage(entry=AllowlistEntryView.of(entry), message=message), 201)


HANDLERS = [claim]
