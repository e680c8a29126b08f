"""What the API needs from the rest of the appliance, handed over once at start."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec
from litestar import Litestar

from orchestrator.batch.allowlist import AllowlistService
from orchestrator.batch.audit import Auditor
from orchestrator.batch.pairing import PairingService
from orchestrator.batch.report import ReportService
from orchestrator.batch.service import BatchService
from orchestrator.security.apikeys import ApiKeys
from orchestrator.security.stepup import StepUp
from orchestrator.telemetry.metrics import Metrics

_STATE_KEY = "services"


class Services(msgspec.Struct, frozen=True, kw_only=True):
    """The application services behind the routes."""

    batches: BatchService
    allowlist: AllowlistService
    pairing: PairingService
    api_keys: ApiKeys
    auditor: Auditor
    step_up: StepUp
    reports: ReportService
    database_health: Callable[[], Awaitable[str]]
    version: str
    metrics: Metrics | None = None


def services_of(app: Litestar) -> Services:
    """The services registered on `app`."""
    services = app.state[_STATE_KEY]
    if not isinstance(services, Services):
        raise TypeError("the app was built without services")
    return services


def state_for(services: Services) -> dict[str, object]:
    """The initial app state holding `services`."""
    return {_STATE_KEY: services}
