"""The SSE stream against a real uvicorn on a loopback socket (contract section 4).

litestar's test clients buffer whole bodies, so an endless stream needs a real server: it runs
inside the test's event loop on a socket the test bound itself, so no waiting for start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from orchestrator.domain.events import ErrorRaised, Event, EventType
from orchestrator.security.stepup import SecuritySettings
from orchestrator.service import AppServer, http_server
from orchestrator.settings import BatchSettings, Settings, StorageSettings, StreamSettings
from tests.api.conftest import Harness, running
from tests.api.sse import SseReader
from tests.fakes import T0, sighting

A, B = "02:00:00:00:00:0A", "02:00:00:00:00:0B"
EVENTS = "/api/v1/provisioning/batch/events"


@dataclass
class Live:
    """An appliance served over real HTTP, plus the in-process harness to drive it."""

    harness: Harness
    server: AppServer
    task: asyncio.Task[None]
    base_url: str

    @contextlib.asynccontextmanager
    async def stream(
        self, params: dict[str, str] | None = None, headers: dict[str, str] | None = None
    ) -> AsyncIterator[SseReader]:
        """Open the event stream with the harness's key (unless `headers` say otherwise)."""
        sent = {"X-API-Key": self.harness.api_key, **(headers or {})}
        async with (
            httpx.AsyncClient(base_url=self.base_url, timeout=10) as client,
            client.stream("GET", EVENTS, params=params, headers=sent) as response,
        ):
            yield SseReader(response)


def live_settings(data_dir: Path, **streams: Any) -> Settings:
    return Settings(
        storage=StorageSettings(data_dir=str(data_dir)),
        batch=BatchSettings(),
        streams=StreamSettings(**streams),
        security=SecuritySettings(totp_required_for=frozenset()),
    )


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[Live]:
    async with running(settings) as harness:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        port = sock.getsockname()[1]
        server = http_server(harness.appliance, "127.0.0.1", port)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            yield Live(harness, server, task, f"http://127.0.0.1:{port}")
        finally:
            server.request_exit()
            async with asyncio.timeout(10):
                await task
            sock.close()


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    async with serving(live_settings(tmp_path)) as served:
        yield served


async def _session_with_devices(h: Harness) -> str:
    await h.post("/allowlist", {"mac": A})
    session = await h.start()
    await h.devices.feed(sighting(A))
    await h.devices.feed(sighting(B, ip="192.168.4.11"))
    await h.post(f"/batch/{session['id']}/devices/{A}/provision")
    return str(session["id"])


async def test_headers_and_snapshot_on_connect(live: Live) -> None:
    sid = await _session_with_devices(live.harness)
    head = live.harness.appliance.bus.head
    async with live.stream() as sse:
        response = sse.response
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        frames = await sse.take(6)
    assert [f.type for f in frames] == [
        "connection.established",
        "session.status",
        "device.discovered",
        "device.discovered",
        "device.state_changed",
        "network.status_changed",
    ]
    assert {f.id for f in frames} == {head}
    assert frames[1].data["payload"]["session"]["id"] == sid
    assert frames[1].data["payload"]["session"]["device_count"] == 2
    discovered = [f.data["payload"] for f in frames[2:4]]
    assert [(d["mac"], d["in_allowlist"]) for d in discovered] == [(A, True), (B, False)]
    assert frames[4].data["payload"] == {
        "mac": A,
        "previous_state": "discovered",
        "new_state": "provisioning",
        "progress": 25,
    }
    assert frames[5].data["payload"] == {
        "ssid": "DelicasaOnboard",
        "is_active": True,
        "connected_devices": 0,
    }


async def test_snapshot_without_any_session_shows_the_network(live: Live) -> None:
    async with live.stream() as sse:
        frames = await sse.take(2)
    assert [f.type for f in frames] == ["connection.established", "network.status_changed"]


async def test_live_events_follow_the_snapshot(live: Live) -> None:
    sid = await _session_with_devices(live.harness)
    async with live.stream() as sse:
        await sse.until("network.status_changed")
        await live.harness.post(f"/batch/{sid}/devices/{B}/skip")
        changed = await sse.next()
        status = await sse.next()
    assert changed.type == "device.state_changed"
    assert changed.data["payload"]["mac"] == B
    assert changed.data["payload"]["new_state"] == "failed"
    assert "operator" in changed.data["payload"]["error"]
    assert changed.data["session_id"] == sid
    assert status.type == "session.status"
    assert status.data["payload"]["session"]["failed_count"] == 1
    assert status.id > changed.id


async def test_reconnect_with_last_event_id_replays_exactly_the_missed_events(live: Live) -> None:
    sid = await _session_with_devices(live.harness)
    async with live.stream() as sse:
        last_seen = (await sse.until("network.status_changed"))[-1].id
    await live.harness.post(f"/batch/{sid}/devices/{B}/skip")
    await live.harness.post(f"/batch/{sid}/pause")
    missed = await live.harness.appliance.store.events.since(last_seen)
    assert len(missed) == 3  # skip: state change + session; pause: session
    async with live.stream(headers={"Last-Event-ID": str(last_seen)}) as sse:
        established = await sse.next()
        replayed = await sse.take(len(missed))
        await live.harness.post(f"/batch/{sid}/resume")
        after = await sse.next()
    assert established.type == "connection.established"
    assert [f.id for f in replayed] == [e.seq for e in missed]
    assert [f.data for f in replayed] == [msgspec.json.decode(e.data) for e in missed]
    assert after.id == missed[-1].seq + 1
    assert after.data["payload"]["session"]["state"] == "active"


async def test_a_last_event_id_older_than_the_log_gets_a_snapshot(live: Live) -> None:
    await _session_with_devices(live.harness)
    store = live.harness.appliance.store
    await store.events.trim(keep_last=2)
    async with live.stream(headers={"Last-Event-ID": "1"}) as sse:
        frames = await sse.until("network.status_changed")
    assert [f.type for f in frames][:2] == ["connection.established", "session.status"]
    assert len(frames) == 6


async def test_heartbeat_arrives_when_the_line_is_idle(tmp_path: Path) -> None:
    async with serving(live_settings(tmp_path, heartbeat_s=0.2)) as served, served.stream() as sse:
        await sse.until("network.status_changed")
        async with asyncio.timeout(5):
            heartbeat = await sse.next()
    assert heartbeat.type == "connection.heartbeat"
    assert heartbeat.data["payload"] is None


def test_the_default_heartbeat_is_at_most_15_seconds() -> None:
    assert StreamSettings().heartbeat_s <= 15
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"heartbeat_s": 16}, StreamSettings)


async def test_session_filter(live: Live) -> None:
    h = live.harness
    first = await h.start()
    await h.post(f"/batch/{first['id']}/stop")
    second = await h.start(target_password="another-password")
    async with live.stream(params={"session_id": first["id"]}) as sse:
        snapshot = await sse.until("network.status_changed")
        await h.devices.feed(sighting(A))
        await h.post(f"/batch/{second['id']}/stop")
        await h.clock.advance(0)
        # Events of the second session must not arrive; the network change (no session) does.
        network = await sse.next()
    assert snapshot[1].data["payload"]["session"]["id"] == first["id"]
    assert network.type == "network.status_changed"
    assert network.data["payload"]["is_active"] is False


async def test_unknown_session_filter_is_not_found(live: Live) -> None:
    async with httpx.AsyncClient(base_url=live.base_url) as client:
        response = await client.get(
            EVENTS, params={"session_id": "sess_nope"}, headers={"X-API-Key": live.harness.api_key}
        )
    assert response.status_code == 404
    assert response.json()["code"] == "SESSION_NOT_FOUND"


async def test_credentials_header_query_cookie_and_refusal(live: Live) -> None:
    key = live.harness.api_key
    async with httpx.AsyncClient(base_url=live.base_url) as client:
        refused = await client.get(EVENTS)
        assert refused.status_code == 401
        assert refused.json()["code"] == "UNAUTHORIZED"
        wrong = await client.get(EVENTS, params={"api_key": "dk_nope_nope"})
        assert wrong.status_code == 401
        signed_in = await client.post("/api/v1/auth/session", json={"api_key": key})
        assert signed_in.status_code == 200
        assert "httponly" in signed_in.headers["set-cookie"].lower()
        assert key not in signed_in.text
        async with client.stream("GET", EVENTS) as response:
            assert response.status_code == 200
            assert (await SseReader(response).next()).type == "connection.established"
        await client.delete("/api/v1/auth/session")
        client.cookies.clear()
        assert (await client.get(EVENTS)).status_code == 401
    async with live.stream(params={"api_key": key}, headers={"X-API-Key": ""}) as sse:
        assert sse.response.status_code == 401
    async with (
        httpx.AsyncClient(base_url=live.base_url) as client,
        client.stream("GET", EVENTS, params={"api_key": key}) as response,
    ):
        assert response.status_code == 200


async def test_anonymous_streams_only_when_configured(tmp_path: Path) -> None:
    async with (
        serving(live_settings(tmp_path, allow_anonymous=True)) as served,
        httpx.AsyncClient(base_url=served.base_url) as client,
    ):
        async with client.stream("GET", EVENTS) as response:
            assert response.status_code == 200
            assert (await SseReader(response).next()).type == "connection.established"
        other = await client.get("/api/v1/provisioning/allowlist")
        assert other.status_code == 401


async def test_a_stalled_subscriber_is_cut_off_while_a_healthy_one_keeps_up(
    tmp_path: Path,
) -> None:
    async with serving(live_settings(tmp_path, queue_size=16)) as served:
        bus = served.harness.appliance.bus
        big = "x" * 4096
        count = 2000
        async with served.stream() as stalled, served.stream() as healthy:
            await stalled.until("network.status_changed")
            await healthy.until("network.status_changed")
            received: list[int] = []

            async def read_healthy() -> None:
                while len(received) < count:
                    received.append((await healthy.next()).id)

            reader = asyncio.create_task(read_healthy())
            for n in range(count):
                event = Event(
                    type=EventType.ERROR,
                    timestamp=T0,
                    payload=ErrorRaised(
                        code="INTERNAL_ERROR", message=f"{n} {big}", retryable=False
                    ),
                )
                await bus.publish(event)  # never waits for a subscriber
            async with asyncio.timeout(30):
                await reader
            assert bus.dropped_subscribers == 1
            assert len(received) == count
            assert received == sorted(received)
            # The stalled client gets what was already buffered, then the stream ends.
            async with asyncio.timeout(30):
                with pytest.raises(EOFError):
                    await _drain(stalled)


async def _drain(reader: SseReader) -> None:
    while True:
        await reader.next()


async def test_shutdown_with_three_streams_open_takes_under_a_second(tmp_path: Path) -> None:
    async with running(live_settings(tmp_path)) as harness:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        server = http_server(harness.appliance, "127.0.0.1", 0)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        async with contextlib.AsyncExitStack() as stack:
            readers = []
            for _ in range(3):
                client = await stack.enter_async_context(httpx.AsyncClient(base_url=base))
                response = await stack.enter_async_context(
                    client.stream("GET", EVENTS, headers={"X-API-Key": harness.api_key})
                )
                reader = SseReader(response)
                await reader.until("network.status_changed")
                readers.append(reader)
            assert harness.appliance.bus.subscriber_count == 3
            server.request_exit()
            async with asyncio.timeout(1.0):
                await task
            for reader in readers:
                with pytest.raises(EOFError):
                    await reader.next()
        sock.close()
