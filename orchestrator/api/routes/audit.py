"""GET /api/v1/provisioning/audit: page through the audit trail, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Response, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from orchestrator.api.envelope import Success, ok
from orchestrator.api.errors import error_specs
from orchestrator.api.state import Services
from orchestrator.domain.audit import AuditEntry
from orchestrator.domain.errors import ErrorCode, OrchestratorError
from orchestrator.domain.mac import parse_mac
from orchestrator.ports.storage import AuditQuery


class AuditPage(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One page of entries; pass `next_before_id` as `before_id` for the next (older) page."""

    entries: list[AuditEntry]
    next_before_id: int | None = None


@get("/audit", responses=error_specs(ErrorCode.UNAUTHORIZED))
async def audit_log(
    *,
    services: NamedDependency[Services],
    mac: Annotated[str | None, QueryParameter()] = None,
    action: Annotated[str | None, QueryParameter(max_length=100)] = None,
    since: Annotated[datetime | None, QueryParameter()] = None,
    before_id: Annotated[int | None, QueryParameter(ge=1)] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
) -> Response[Success[AuditPage]]:
    """Entries filtered by MAC, action and time (`since` is inclusive, RFC 3339 with zone)."""
    if since is not None and since.tzinfo is None:
        raise OrchestratorError(
            ErrorCode.VALIDATION_FAILED,
            "since needs a time zone",
            details="use RFC 3339, e.g. 2026-11-22T08:00:00Z",
        )
    query = AuditQuery(
        mac=parse_mac(mac) if mac else None,
        action=action,
        since=since,
        before_id=before_id,
        limit=limit,
    )
    entries = await services.auditor.page(query)
    more = len(entries) == limit and entries[-1].id is not None
    return ok(AuditPage(entries=entries, next_before_id=entries[-1].id if more else None))


HANDLERS = [audit_log]
