"""The SSE parser and `batch follow`'s model of a session (pure: no server)."""

from __future__ import annotations

import msgspec

from orchestrator.client.render import progress_bar, table, watch_summary, watch_table
from orchestrator.client.sse import SseFrame, SseParser, StreamEvent
from orchestrator.client.watch import BatchWatch
from orchestrator.domain.candidate import CandidateState
from orchestrator.domain.events import DeviceDiscovered, DeviceStateChanged, SessionStatus
from orchestrator.domain.mac import Mac
from orchestrator.domain.session import SessionSnapshot, SessionState
from tests.fakes import T0

SID = "sess_watchtest0000001"
A, B, C = Mac("02:00:00:00:00:0A"), Mac("02:00:00:00:00:0B"), Mac("02:00:00:00:00:0C")
S = CandidateState


def feed(lines: list[str]) -> list[SseFrame]:
    parser = SseParser()
    return [f for line in lines if (f := parser.feed(line)) is not None]


def test_frames_are_dispatched_on_blank_lines() -> None:
    frames = feed(
        [
            ": keep-alive",
            "",
            "id: 7",
            'data: {"a": 1}',
            "",
            "data:x",
            "data: y",
            "event: ignored",
            "",
        ]
    )
    assert frames == [SseFrame(id="7", data='{"a": 1}'), SseFrame(id="7", data="x\ny")]


def test_a_frame_without_data_is_not_dispatched_and_odd_ids_are_ignored() -> None:
    assert feed(["id: 3", "", "id: 4\0", "data", ""]) == [SseFrame(id="3", data="")]


def event(kind: str, payload: object, session_id: str | None = SID) -> StreamEvent:
    return StreamEvent(
        type=kind,
        timestamp=T0,
        payload=msgspec.Raw(msgspec.json.encode(payload)),
        session_id=session_id,
    )


def session(state: SessionState, sid: str = SID) -> StreamEvent:
    snapshot = SessionSnapshot(
        id=sid,
        state=state,
        target_ssid="Factory",
        created_at=T0,
        updated_at=T0,
        device_count=0,
        provisioned_count=0,
        verified_count=0,
        failed_count=0,
    )
    return event("session.status", SessionStatus(session=snapshot), sid)


def seen(mac: Mac, *, listed: bool = True) -> StreamEvent:
    payload = DeviceDiscovered(
        mac=mac, ip="192.168.4.9", rssi=-60, firmware_version="2.0", in_allowlist=listed
    )
    return event("device.discovered", payload)


def moved(mac: Mac, old: S, new: S, error: str | None = None) -> StreamEvent:
    payload = DeviceStateChanged(mac=mac, previous_state=old, new_state=new, error=error)
    return event("device.state_changed", payload)


def done(watch: BatchWatch) -> bool:
    # A call, not the property: mypy would keep a property's narrowed value across apply().
    return watch.done


def watching(*events: StreamEvent) -> tuple[BatchWatch, list[str]]:
    watch = BatchWatch(SID)
    lines = [line for e in events for line in watch.apply(e)]
    return watch, lines


def test_changes_are_told_once_and_a_repeated_snapshot_tells_nothing() -> None:
    snapshot = [session(SessionState.DISCOVERING), seen(A), moved(A, S.DISCOVERED, S.PROVISIONING)]
    watch, lines = watching(*snapshot)
    assert lines == [
        f"session {SID} discovering",
        f"{A} discovered (RSSI -60 dBm, firmware 2.0, on the allowlist)",
        f"{A} discovered -> provisioning",
    ]
    assert [line for e in snapshot for line in watch.apply(e)] == []


def test_other_sessions_are_ignored_and_a_late_device_is_still_shown() -> None:
    watch, lines = watching(
        session(SessionState.ACTIVE, "sess_other"),
        moved(A, S.PROVISIONING, S.FAILED, "no answer"),
        event("connection.heartbeat", None, None),
    )
    assert watch.session is None
    assert lines == [f"{A} provisioning -> failed: no answer"]
    assert [d.error for d in watch.failed] == ["no answer"]


def test_not_done_while_discovering_even_when_everything_finished() -> None:
    watch, _ = watching(
        session(SessionState.DISCOVERING), seen(A), moved(A, S.VERIFYING, S.VERIFIED)
    )
    assert not done(watch)
    watch.apply(session(SessionState.ACTIVE))
    assert done(watch)
    assert watch.exit_status == 0


def test_unlisted_devices_left_alone_do_not_hold_the_watch_up() -> None:
    watch, _ = watching(
        session(SessionState.ACTIVE),
        seen(A),
        seen(B, listed=False),
        seen(C),
        moved(A, S.VERIFYING, S.VERIFIED),
    )
    assert not done(watch)  # C, allowlisted, has not been provisioned yet
    watch.apply(moved(C, S.PROVISIONING, S.FAILED, "wrong password"))
    assert done(watch)
    assert watch.exit_status == 1
    assert watch_summary(watch) == [
        "done: 1 of 3 devices FAILED, 1 verified",
        f"  {C}: wrong password",
    ]


def test_nothing_finished_is_not_done_until_the_session_closes() -> None:
    watch, _ = watching(session(SessionState.ACTIVE), seen(A, listed=False))
    assert not done(watch)
    watch.apply(session(SessionState.CLOSING))
    assert not done(watch)
    watch.apply(session(SessionState.CLOSED))
    assert done(watch)
    assert watch.exit_status == 0
    assert watch_summary(watch) == ["done: 0 of 1 devices verified, none failed"]


def test_tables_and_bars() -> None:
    assert progress_bar(1, 4, width=8) == "[##......] 1/4"
    assert progress_bar(0, 0, width=4) == "[....] 0/0"
    assert table(("A", "BB", "C"), [("xxx", "y", ""), ("z", "", "last")]) == [
        "A    BB  C",
        "xxx  y",
        "z        last",
    ]
    assert watch_table([]) == ["(no devices yet)"]
