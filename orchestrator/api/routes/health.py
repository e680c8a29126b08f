"""Health and network status routes."""

from __future__ import annotations

from litestar import Response, get
from litestar.di import NamedDependency

from orchestrator.api.envelope import Success, ok
from orchestrator.api.errors import error_specs
from orchestrator.api.schemas import HealthData
from orchestrator.api.state import Services
from orchestrator.batch.service import BatchService
from orchestrator.domain.errors import ErrorCode
from orchestrator.domain.network import NetworkStatus


@get("/api/v1/health", summary="Liveness and database state (no API key)")
async def health(services: NamedDependency[Services]) -> Response[Success[HealthData]]:
    """`ok` when the database answers; `degraded` with the reason otherwise."""
    database = await services.database_health()
    return ok(
        HealthData(
            status="ok" if database == "ok" else "degraded",
            version=services.version,
            database=database,
        )
    )


@get("/network/status", responses=error_specs(ErrorCode.UNAUTHORIZED))
async def network_status(
    batches: NamedDependency[BatchService],
) -> Response[Success[NetworkStatus]]:
    """The onboarding network: SSID, whether it is up, connected stations."""
    return ok(batches.network_status())
