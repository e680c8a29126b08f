"""Live frames leave in chunks: one write for whatever queued while the stream was busy."""

from __future__ import annotations

from datetime import UTC, datetime

from orchestrator.storage import MemoryStore
from orchestrator.streaming.bus import EventBus
from orchestrator.streaming.stream import EventStream, OutFrame
from tests.storage.samples import make_event

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def stream_of(bus: EventBus) -> EventStream:
    subscription, head = bus.subscribe(None)
    return EventStream(
        bus=bus,
        subscription=subscription,
        initial=[OutFrame(id=head, data=b"{}")] * 3,
        head=head,
        heartbeat_s=60,
        clock=lambda: T0,
    )


async def test_frames_queued_meanwhile_leave_together_in_order() -> None:
    bus = EventBus(MemoryStore().events)
    stream = stream_of(bus)
    chunks = stream.chunks(limit=4)
    assert len(await anext(chunks)) == 3  # the initial frames, one chunk
    for n in range(1, 7):
        await bus.publish(make_event(n))
    assert [f.id for f in await anext(chunks)] == [1, 2, 3, 4]  # capped at the limit
    assert [f.id for f in await anext(chunks)] == [5, 6]
    await bus.publish(make_event(7))
    assert [f.id for f in await anext(chunks)] == [7]  # alone, when nothing else waits
    bus.close_all()
    assert [chunk async for chunk in chunks] == []  # the ending ends the stream


async def test_a_subscriber_cut_off_for_falling_behind_gets_no_more_frames() -> None:
    bus = EventBus(MemoryStore().events, queue_size=2)
    stream = stream_of(bus)
    chunks = stream.chunks()
    await anext(chunks)
    for n in range(1, 4):  # the third does not fit: the subscriber is cut off
        await bus.publish(make_event(n))
    assert [chunk async for chunk in chunks] == []
    assert bus.subscriber_count == 0


def test_a_frame_on_the_wire_has_an_id_and_one_data_line() -> None:
    assert OutFrame(id=42, data=b'{"type":"x"}').wire() == b'id: 42\ndata: {"type":"x"}\n\n'
