"""GET /api/v1/provisioning/batch/events: the SSE stream (contract section 4)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from litestar import get
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, QueryParameter
from litestar.response import Stream

from orchestrator.api.auth import STREAM_CREDENTIALS
from orchestrator.api.errors import error_specs
from orchestrator.api.streams import Streams
from orchestrator.batch.service import BatchService
from orchestrator.domain.errors import ErrorCode
from orchestrator.streaming.stream import EventStream, open_stream

SSE_HEADERS = {"Cache-Control": "no-cache", "Connection": "keep-alive", "X-Accel-Buffering": "no"}


async def _chunks(stream: EventStream) -> AsyncIterator[bytes]:
    # Frames are joined into one body chunk, one write, which litestar's ServerSentEvent
    # (a write per message) cannot do; the frame format itself is OutFrame.wire.
    async for frames in stream.chunks():
        yield b"".join(frame.wire() for frame in frames)


@get(
    "/events",
    opt=STREAM_CREDENTIALS,
    media_type="text/event-stream",
    responses=error_specs(ErrorCode.SESSION_NOT_FOUND, ErrorCode.UNAUTHORIZED),
    summary="Live events (Server-Sent Events)",
    description=(
        "Frames have an `id:` and one JSON `data:` line, never an `event:` line. Without "
        "Last-Event-ID the stream starts with a snapshot; with one still in the retained log, "
        "the missed events are replayed. Credentials: X-API-Key, ?api_key= or the console "
        "session cookie."
    ),
)
async def batch_events(
    batches: NamedDependency[BatchService],
    streams: NamedDependency[Streams],
    session_id: Annotated[str | None, QueryParameter()] = None,
    last_event_id: Annotated[str | None, HeaderParameter(name="Last-Event-ID")] = None,
) -> Stream:
    """Open the stream; an unknown `session_id` fails here, before the stream starts."""
    stream = await open_stream(
        bus=streams.bus,
        snapshot=batches.stream_snapshot,
        session_filter=session_id,
        last_event_id=_sequence(last_event_id),
        heartbeat_s=streams.heartbeat_s,
        clock=streams.clock,
    )
    return Stream(_chunks(stream), media_type="text/event-stream", headers=SSE_HEADERS)


def _sequence(header: str | None) -> int | None:
    """A Last-Event-ID we issued is a non-negative integer; anything else means "none"."""
    if header is None or not header.strip().isdigit():
        return None
    return int(header.strip())
