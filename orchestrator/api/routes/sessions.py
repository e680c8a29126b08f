"""Session routes: recovery after a restart, and history."""

from __future__ import annotations

from typing import Annotated

from litestar import Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from orchestrator.api.envelope import Success, ok
from orchestrator.api.errors import error_specs
from orchestrator.api.gates import STEP_UP_ERRORS, require_step_up
from orchestrator.api.routes.batch import session_data
from orchestrator.api.schemas import ClearedData, MessageData, SessionData, SessionsData
from orchestrator.batch.service import BatchService
from orchestrator.domain.errors import ErrorCode
from orchestrator.domain.totp import GatedOperation

_E = ErrorCode


@get("/recoverable", responses=error_specs(_E.UNAUTHORIZED))
async def recoverable_sessions(
    batches: NamedDependency[BatchService],
) -> Response[Success[SessionsData]]:
    """Sessions an earlier run left open; resume or discard each."""
    return ok(SessionsData(sessions=await batches.recoverable()))


@post(
    "/{session_id:str}/resume",
    status_code=200,
    responses=error_specs(_E.SESSION_NOT_FOUND, _E.SESSION_NOT_RECOVERABLE, _E.UNAUTHORIZED),
)
async def resume_session(
    session_id: FromPath[str], batches: NamedDependency[BatchService]
) -> Response[Success[SessionData]]:
    """Adopt a recoverable session and carry on where it stopped."""
    return ok(session_data(await batches.resume_recoverable(session_id)))


@delete(
    "/{session_id:str}",
    status_code=200,
    guards=[require_step_up(GatedOperation.SESSION_DISCARD)],
    responses=error_specs(_E.SESSION_NOT_FOUND, _E.SESSION_NOT_RECOVERABLE, *STEP_UP_ERRORS),
)
async def discard_session(
    session_id: FromPath[str], batches: NamedDependency[BatchService]
) -> Response[Success[MessageData]]:
    """Close a recoverable session without resuming it."""
    await batches.discard(session_id)
    return ok(MessageData(message=f"session {session_id} discarded"))


@get("/history", responses=error_specs(_E.UNAUTHORIZED))
async def session_history(
    batches: NamedDependency[BatchService],
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 10,
) -> Response[Success[SessionsData]]:
    """The most recent sessions, newest first."""
    return ok(SessionsData(sessions=await batches.history(limit)))


@delete(
    "/history",
    status_code=200,
    guards=[require_step_up(GatedOperation.HISTORY_CLEAR)],
    responses=error_specs(*STEP_UP_ERRORS),
)
async def clear_history(
    batches: NamedDependency[BatchService],
    older_than_days: Annotated[int, QueryParameter(ge=0, le=36_500)] = 7,
) -> Response[Success[ClearedData]]:
    """Delete closed sessions older than `older_than_days`."""
    cleared = await batches.clear_history(older_than_days)
    return ok(ClearedData(cleared=cleared, message=f"cleared {cleared} sessions"))


HANDLERS = [recoverable_sessions, session_history, clear_history, resume_session, discard_session]
