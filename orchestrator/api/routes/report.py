"""Batch reports (CSV and JSON) of a session: GET /api/v1/provisioning/sessions/{id}/report."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Response, get
from litestar.di import NamedDependency
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath, QueryParameter

from orchestrator.api.envelope import Success, ok
from orchestrator.api.errors import error_specs
from orchestrator.api.state import Services
from orchestrator.batch.report import BatchReport, report_csv
from orchestrator.domain.errors import ErrorCode

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


@get(
    "/sessions/{session_id:str}/report",
    responses=error_specs(ErrorCode.SESSION_NOT_FOUND, ErrorCode.UNAUTHORIZED),
    summary="The batch report of a session (JSON or CSV)",
    description=(
        "Every device of the session: its final state, the states it went through with their "
        "times, attempts, retries, the failure reason and any cloud registration; plus the "
        "session and its counts. Never a secret. `format=json` (default) answers the envelope "
        "documented here; `format=csv` answers `text/csv` instead, one row per device after a "
        "header row, as an attachment named `report-<session>.csv`. Works for closed sessions too."
    ),
)
async def session_report(
    session_id: FromPath[str],
    services: NamedDependency[Services],
    report_format: Annotated[Literal["json", "csv"], QueryParameter(name="format")] = "json",
) -> Response[Success[BatchReport]]:
    """The report of one session, as the envelope or as a CSV download."""
    report = await services.reports.report(session_id)
    if report_format == "csv":
        # Session ids are `sess_` + lowercase alphanumerics: safe inside the quoted filename.
        csv_response: Response[Any] = Response(
            report_csv(report),
            media_type=CSV_MEDIA_TYPE,
            headers={
                "Content-Disposition": f'attachment; filename="report-{report.session.id}.csv"'
            },
        )
        return csv_response
    return ok(report)


HANDLERS: list[BaseRouteHandler] = [session_report]
