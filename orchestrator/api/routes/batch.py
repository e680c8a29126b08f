"""Batch routes: /api/v1/provisioning/batch/..."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from orchestrator.api.envelope import Success, ok
from orchestrator.api.errors import error_specs
from orchestrator.api.gates import STEP_UP_ERRORS, require_step_up
from orchestrator.api.schemas import (
    DeviceActionData,
    DevicesData,
    ProvisionAllData,
    ProvisionAllRequest,
    SessionData,
    SessionMessage,
    StartData,
    StartRequest,
)
from orchestrator.batch.readmodels import DeviceOutcome, SessionView
from orchestrator.batch.service import BatchService
from orchestrator.domain.candidate import CandidateState
from orchestrator.domain.errors import ErrorCode
from orchestrator.domain.mac import parse_mac
from orchestrator.domain.network import NetworkStatus
from orchestrator.domain.totp import GatedOperation
from orchestrator.protocol.messages import CloudProvisioning

_E = ErrorCode
_SESSION_ERRORS = (_E.SESSION_NOT_FOUND, _E.SESSION_EXPIRED, _E.UNAUTHORIZED)
_CHANGE_ERRORS = (*_SESSION_ERRORS, _E.SESSION_ALREADY_CLOSED, _E.SESSION_NOT_RECOVERABLE)
_DEVICE_ERRORS = (*_CHANGE_ERRORS, _E.DEVICE_NOT_FOUND, _E.DEVICE_INVALID_STATE)


def session_data(view: SessionView, *, include_devices: bool = True) -> SessionData:
    """The `data` of GET /batch/{id} for `view`."""
    remaining = view.timeout_remaining_s
    return SessionData(
        session=view.session,
        devices=view.devices if include_devices else None,
        timeout_remaining=f"{remaining}s" if remaining is not None else None,
        network_status=view.network_status,
    )


def _device(outcome: DeviceOutcome) -> DeviceActionData:
    return DeviceActionData(mac=outcome.mac, state=outcome.state, message=outcome.message)


@post(
    "/start",
    status_code=201,
    guards=[require_step_up(GatedOperation.SESSION_START)],
    responses=error_specs(_E.SESSION_ALREADY_ACTIVE, *STEP_UP_ERRORS),
    summary="Start a batch session",
)
async def start_batch(
    data: JSONBody[StartRequest], batches: NamedDependency[BatchService]
) -> Response[Success[StartData]]:
    """Open a session for `target_ssid`; repeating the same request returns the same session."""
    cloud = None
    if data.cloud is not None:
        cloud = CloudProvisioning(**msgspec.structs.asdict(data.cloud))
    snapshot, created = await batches.start(
        data.target_ssid, data.target_password, data.config, cloud=cloud
    )
    message = "session started" if created else "session already started with these settings"
    return ok(StartData(session=snapshot, message=message), 201)


@get("/{session_id:str}", responses=error_specs(*_SESSION_ERRORS), summary="Get a session")
async def get_batch(
    session_id: FromPath[str],
    batches: NamedDependency[BatchService],
    include_devices: Annotated[bool, QueryParameter()] = True,
) -> Response[Success[SessionData]]:
    """The session, its devices (unless `include_devices=false`) and the network status."""
    view = await batches.view(session_id, include_devices=include_devices)
    return ok(session_data(view, include_devices=include_devices))


@post(
    ["/{session_id:str}/stop", "/{session_id:str}/close"],
    status_code=200,
    responses=error_specs(*_SESSION_ERRORS),
)
async def stop_batch(
    session_id: FromPath[str], batches: NamedDependency[BatchService]
) -> Response[Success[SessionMessage]]:
    """End the session (idempotent; `/close` is an alias); it answers `closed`."""
    snapshot = await batches.stop(session_id)
    return ok(SessionMessage(session=snapshot, message="session closed"))


@post("/{session_id:str}/pause", status_code=200, responses=error_specs(*_CHANGE_ERRORS))
async def pause_batch(
    session_id: FromPath[str], batches: NamedDependency[BatchService]
) -> Response[Success[SessionData]]:
    """Start no new device work until resumed."""
    return ok(session_data(await batches.pause(session_id)))


@post("/{session_id:str}/resume", status_code=200, responses=error_specs(*_CHANGE_ERRORS))
async def resume_batch(
    session_id: FromPath[str], batches: NamedDependency[BatchService]
) -> Response[Success[SessionData]]:
    """Carry on after a pause."""
    return ok(session_data(await batches.resume(session_id)))


@get("/{session_id:str}/devices", responses=error_specs(*_SESSION_ERRORS))
async def list_devices(
    session_id: FromPath[str],
    batches: NamedDependency[BatchService],
    state_filter: Annotated[CandidateState | None, QueryParameter(name="state")] = None,
) -> Response[Success[DevicesData]]:
    """The session's candidates, optionally filtered by state."""
    return ok(DevicesData(devices=await batches.devices(session_id, state_filter)))


@post(
    "/{session_id:str}/devices/{mac:str}/provision",
    status_code=202,
    responses=error_specs(*_DEVICE_ERRORS, _E.DEVICE_NOT_IN_ALLOWLIST),
)
async def provision_device(
    session_id: FromPath[str], mac: FromPath[str], batches: NamedDependency[BatchService]
) -> Response[Success[DeviceActionData]]:
    """Start provisioning one allowlisted device; progress follows on the event stream."""
    return ok(_device(await batches.provision(session_id, parse_mac(mac))), 202)


@post("/{session_id:str}/provision-all", status_code=202, responses=error_specs(*_CHANGE_ERRORS))
async def provision_all(
    session_id: FromPath[str],
    batches: NamedDependency[BatchService],
    data: JSONBody[ProvisionAllRequest | None] = None,
) -> Response[Success[ProvisionAllData]]:
    """Start every discovered device (only allowlisted ones unless told otherwise)."""
    only_allowlisted = data.only_allowlisted if data else True
    outcome = await batches.provision_all(session_id, only_allowlisted=only_allowlisted)
    return ok(
        ProvisionAllData(
            initiated_count=outcome.initiated_count,
            skipped_count=outcome.skipped_count,
            message=outcome.message,
        ),
        202,
    )


@post(
    "/{session_id:str}/devices/{mac:str}/retry",
    status_code=202,
    responses=error_specs(*_DEVICE_ERRORS, _E.MAX_RETRIES_EXCEEDED, _E.DEVICE_NOT_IN_ALLOWLIST),
)
async def retry_device(
    session_id: FromPath[str], mac: FromPath[str], batches: NamedDependency[BatchService]
) -> Response[Success[DeviceActionData]]:
    """Provision a failed device again (within its retry budget)."""
    return ok(_device(await batches.retry(session_id, parse_mac(mac))), 202)


@post(
    "/{session_id:str}/devices/{mac:str}/skip",
    status_code=200,
    responses=error_specs(*_DEVICE_ERRORS),
)
async def skip_device(
    session_id: FromPath[str], mac: FromPath[str], batches: NamedDependency[BatchService]
) -> Response[Success[DeviceActionData]]:
    """Give up on a device; it ends `failed`, saying the operator skipped it."""
    return ok(_device(await batches.skip(session_id, parse_mac(mac))))


@get("/network", responses=error_specs(_E.UNAUTHORIZED))
async def batch_network(batches: NamedDependency[BatchService]) -> Response[Success[NetworkStatus]]:
    """The onboarding network (same as /network/status)."""
    return ok(batches.network_status())


HANDLERS = [
    start_batch,
    batch_network,
    get_batch,
    stop_batch,
    pause_batch,
    resume_batch,
    list_devices,
    provision_device,
    provision_all,
    retry_device,
    skip_device,
]
