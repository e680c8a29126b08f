"""Sessions: recovery after a restart, history, and the event log behind them."""

from __future__ import annotations

from pathlib import Path

from orchestrator.settings import Settings
from tests.api.conftest import PASSWORD, SSID, Harness, running
from tests.api.test_transport import assert_error
from tests.fakes import FakeClock, sighting

A, B = "02:00:00:00:00:0A", "02:00:00:00:00:0B"


async def _left_open(settings: Settings, clock: FakeClock) -> str:
    """A run that starts a batch, provisions one device and stops without closing it."""
    async with running(settings, clock) as first:
        await first.post("/allowlist/bulk", {"entries": [{"mac": A}, {"mac": B}]})
        session = await first.start()
        await first.devices.feed(sighting(A))
        await first.devices.feed(sighting(B, ip="192.168.4.11"))
        await first.post(f"/batch/{session['id']}/devices/{A}/provision")
        return str(session["id"])


async def test_an_unclosed_session_is_recoverable_after_a_restart(settings: Settings) -> None:
    clock = FakeClock()
    sid = await _left_open(settings, clock)
    async with running(settings, clock) as second:
        listed = (await second.get("/sessions/recoverable")).json()["data"]["sessions"]
        assert [s["id"] for s in listed] == [sid]
        assert listed[0]["device_count"] == 2
        blocked = await second.post(
            "/batch/start", {"target_ssid": SSID, "target_password": PASSWORD}
        )
        body = assert_error(blocked, 409, "SESSION_ALREADY_ACTIVE")
        assert "resume or discard" in body["error"]["message"]
        not_yet = await second.post(f"/batch/{sid}/provision-all")
        assert_error(not_yet, 409, "SESSION_NOT_RECOVERABLE")

        resumed = await second.post(f"/sessions/{sid}/resume")
        assert resumed.status_code == 200
        data = resumed.json()["data"]
        assert data["session"]["id"] == sid
        states = {d["mac"]: d["state"] for d in data["devices"]}
        assert states == {A: "provisioning", B: "discovered"}
        # The device that was in flight goes back to the engine; nothing is lost.
        assert second.engine.submitted == [(sid, A)]
        assert (await second.get("/sessions/recoverable")).json()["data"]["sessions"] == []
        again = await second.post(f"/sessions/{sid}/resume")
        assert again.status_code == 200
        assert second.engine.submitted == [(sid, A)]
        await second.devices.feed(sighting("02:00:00:00:00:0C"))
        assert (await second.get(f"/batch/{sid}")).json()["data"]["session"]["device_count"] == 3


async def test_a_recoverable_session_can_be_discarded(settings: Settings) -> None:
    clock = FakeClock()
    sid = await _left_open(settings, clock)
    async with running(settings, clock) as second:
        response = await second.delete(f"/sessions/{sid}")
        assert response.status_code == 200
        assert "discarded" in response.json()["data"]["message"]
        session = (await second.get(f"/batch/{sid}")).json()["data"]["session"]
        assert session["state"] == "closed"
        assert_error(await second.delete(f"/sessions/{sid}"), 409, "SESSION_NOT_RECOVERABLE")
        assert_error(await second.post(f"/sessions/{sid}/resume"), 409, "SESSION_NOT_RECOVERABLE")
        await second.start()


async def test_only_sessions_of_an_earlier_run_are_recoverable(harness: Harness) -> None:
    session = await harness.start()
    assert (await harness.get("/sessions/recoverable")).json()["data"]["sessions"] == []
    assert_error(await harness.delete(f"/sessions/{session['id']}"), 409, "SESSION_NOT_RECOVERABLE")
    assert_error(await harness.delete("/sessions/sess_unknown"), 404, "SESSION_NOT_FOUND")
    assert_error(await harness.post("/sessions/sess_unknown/resume"), 404, "SESSION_NOT_FOUND")


async def test_history_lists_newest_first_and_clears_old_closed_sessions(harness: Harness) -> None:
    ids = []
    for n in range(3):
        session = await harness.start(target_password=f"password-{n}")
        ids.append(session["id"])
        await harness.post(f"/batch/{session['id']}/stop")
        await harness.clock.advance(86_400 * 4)
    history = (await harness.get("/sessions/history", limit=2)).json()["data"]["sessions"]
    assert [s["id"] for s in history] == [ids[2], ids[1]]
    assert_error(await harness.get("/sessions/history", limit=0), 400, "VALIDATION_FAILED")
    cleared = await harness.delete("/sessions/history", older_than_days=7)
    assert cleared.json()["data"]["cleared"] == 2
    remaining = (await harness.get("/sessions/history")).json()["data"]["sessions"]
    assert [s["id"] for s in remaining] == [ids[2]]


async def test_every_change_lands_in_the_event_log(harness: Harness) -> None:
    import msgspec

    await harness.post("/allowlist", {"mac": A})
    session = await harness.start()
    await harness.devices.feed(sighting(A))
    await harness.post(f"/batch/{session['id']}/devices/{A}/provision")
    await harness.post(f"/batch/{session['id']}/stop")
    stored = await harness.appliance.store.events.since(0)
    events = [msgspec.json.decode(e.data) for e in stored]
    assert [e["type"] for e in events] == [
        "session.status",
        "network.status_changed",
        "device.discovered",
        "session.status",
        "device.state_changed",
        "session.status",
        "session.status",
        "session.status",
        "network.status_changed",
    ]
    assert all(e["version"] == "1.0" for e in events)
    network = [e for e in events if e["type"] == "network.status_changed"]
    assert [e["payload"]["is_active"] for e in network] == [True, False]
    assert all("session_id" not in e for e in network)
    assert all(e["session_id"] == session["id"] for e in events if e not in network)
    changed = events[4]["payload"]
    assert changed == {
        "mac": A,
        "previous_state": "discovered",
        "new_state": "provisioning",
        "progress": 25,
    }
    assert [e["payload"]["session"]["state"] for e in events if e["type"] == "session.status"][
        -2:
    ] == [
        "closing",
        "closed",
    ]
    seqs = [e.seq for e in stored]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)


async def test_data_survives_a_restart(tmp_path: Path, settings: Settings) -> None:
    clock = FakeClock()
    async with running(settings, clock) as first:
        await first.post("/allowlist", {"mac": A, "description": "kept"})
        session = await first.start()
        await first.post(f"/batch/{session['id']}/stop")
    async with running(settings, clock) as second:
        entry = (await second.get(f"/allowlist/{A}")).json()["data"]["entry"]
        assert entry["description"] == "kept"
        history = (await second.get("/sessions/history")).json()["data"]["sessions"]
        assert [s["id"] for s in history] == [session["id"]]
