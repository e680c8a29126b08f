"""TOTP step-up through the API: every gated route refuses without a code, refuses a wrong
or replayed one, passes with a fresh code or a step-up token until the token expires, and
lets everything through when configuration does not gate it.

These tests build their own appliance (with `security` settings of their choosing) instead
of using tests/api/conftest.py, whose default configuration turns step-up off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import msgspec
import pytest

from orchestrator.batch.allowlist import AllowlistDraft
from orchestrator.domain.mac import parse_mac
from orchestrator.domain.session import ClosedReason, Session, SessionConfig, SessionState
from orchestrator.domain.totp import GatedOperation
from orchestrator.edges import Edges
from orchestrator.network.standby import StandbyNetwork
from orchestrator.ports.storage import AuditQuery
from orchestrator.security.stepup import AUDIT_GATE, AUDIT_STEP_UP, SecuritySettings
from orchestrator.security.totp import code_at, time_step
from orchestrator.service import Appliance, run_appliance
from orchestrator.settings import Settings, StorageSettings
from tests.api.test_transport import assert_error
from tests.fakes import FakeClock, QueueDeviceSource, RecordingEngine

MAC = "02:00:00:00:00:0A"
OLD_SESSION = "sess_earlierrun00001"
CLOSED_SESSION = "sess_closedlongago01"
API = "/api/v1/provisioning"
STEP_UP = "/api/v1/auth/step-up"
STATUS = "/api/v1/auth/status"


@dataclass
class Gated:
    """An appliance with step-up configured, its client (with an API key) and its clock."""

    client: httpx.AsyncClient
    appliance: Appliance
    clock: FakeClock
    api_key: str
    seed: str = ""
    spent: set[str] = field(default_factory=set)

    async def enroll(self) -> None:
        self.seed = await self.appliance.services.step_up.enroll()

    def code(self, offset: int = 0) -> str:
        """The code of the current time step (or one `offset` steps away)."""
        return code_at(self.seed, time_step(self.clock.now()) + offset)

    def wrong_code(self) -> str:
        near = {self.code(offset) for offset in range(-12, 3)}
        return next(c for c in (f"{n:06d}" for n in range(1_000_000)) if c not in near)

    async def fresh_code(self) -> str:
        """A code no request has used yet (waits for the next step when needed)."""
        if self.code() in self.spent:
            await self.clock.advance(30)
        code = self.code()
        self.spent.add(code)
        return code

    async def token(self) -> str:
        response = await self.client.post(STEP_UP, json={"code": await self.fresh_code()})
        assert response.status_code == 200, response.text
        token: str = response.json()["data"]["token"]
        return token

    async def audit(self) -> list[tuple[str, str, str | None]]:
        entries = await self.appliance.store.audit.page(AuditQuery(limit=1000))
        return [(e.action, e.outcome, e.detail) for e in reversed(entries)]


def gated_settings(data_dir: Path, required: frozenset[GatedOperation] | None = None) -> Settings:
    security = (
        SecuritySettings() if required is None else SecuritySettings(totp_required_for=required)
    )
    return Settings(storage=StorageSettings(data_dir=str(data_dir)), security=security)


@contextlib.asynccontextmanager
async def gated_appliance(settings: Settings, *, enrolled: bool = True) -> AsyncIterator[Gated]:
    clock = FakeClock()
    edges = Edges(
        devices=QueueDeviceSource(),
        engine=RecordingEngine(),
        network=StandbyNetwork(settings.batch.onboarding_ssid),
    )
    async with run_appliance(settings, edges=edges, clock=clock.now, sleep=clock.sleep) as app:
        _, key = await app.services.api_keys.create("tests")
        transport = httpx.ASGITransport(app=cast("Any", app.app))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            client.headers["X-API-Key"] = key
            gated = Gated(client=client, appliance=app, clock=clock, api_key=key)
            if enrolled:
                await gated.enroll()
            yield gated


@pytest.fixture
async def gated(tmp_path: Path) -> AsyncIterator[Gated]:
    """The default configuration (the four sensitive operations gated), TOTP enrolled."""
    async with gated_appliance(gated_settings(tmp_path)) as g:
        yield g


# --- the gated routes -------------------------------------------------------------------------


async def _nothing(g: Gated) -> None:
    return None


async def _allowlisted(g: Gated) -> None:
    await g.appliance.services.allowlist.put(AllowlistDraft(mac=parse_mac(MAC), description="old"))


async def _description(g: Gated) -> str | None:
    entry = await g.appliance.store.allowlist.get(parse_mac(MAC))
    return None if entry is None else entry.description or ""


async def _recoverable(g: Gated) -> None:
    """A session an earlier run left open (so it can be discarded)."""
    existing = await g.appliance.store.sessions.get(OLD_SESSION)
    if existing is not None:  # discarded by an earlier call: open it again
        reopened = msgspec.structs.replace(existing, state=SessionState.ACTIVE, closed_reason=None)
        await g.appliance.store.sessions.save(reopened)
        return
    now = g.clock.now()
    session = Session(
        id=OLD_SESSION,
        state=SessionState.ACTIVE,
        target_ssid="Factory",
        config=SessionConfig(),
        created_at=now - timedelta(hours=1),
        updated_at=now - timedelta(hours=1),
        run_id="an-earlier-run",
    )
    await g.appliance.store.sessions.create(session, b"sealed")


async def _closed_long_ago(g: Gated) -> None:
    """A closed session old enough for DELETE /sessions/history to clear."""
    then = g.clock.now() - timedelta(days=30)
    session = Session(
        id=CLOSED_SESSION,
        state=SessionState.CLOSED,
        target_ssid="Factory",
        config=SessionConfig(),
        created_at=then,
        updated_at=then,
        run_id="an-earlier-run",
        closed_reason=ClosedReason.STOPPED,
    )
    await g.appliance.store.sessions.create(session, b"sealed")


async def _session_count(g: Gated) -> int:
    return len(await g.appliance.store.sessions.history(100))


async def _old_session_state(g: Gated) -> str | None:
    session = await g.appliance.store.sessions.get(OLD_SESSION)
    return None if session is None else str(session.state)


async def _closed_session_kept(g: Gated) -> bool:
    return await g.appliance.store.sessions.get(CLOSED_SESSION) is not None


@dataclass(frozen=True)
class Route:
    """A gated route, how to set the stage for it, and how to see whether it did its work."""

    name: str
    operation: GatedOperation
    method: str
    path: str
    status: int
    prepare: Callable[[Gated], Awaitable[None]]
    observe: Callable[[Gated], Awaitable[object]]
    """Some state the route changes: equal before and after means it did nothing."""
    json: Any = None
    params: dict[str, str] | None = None
    content: bytes | None = None

    async def call(self, g: Gated, **headers: str) -> httpx.Response:
        return await g.client.request(
            self.method,
            f"{API}{self.path}",
            json=self.json,
            params=self.params,
            content=self.content,
            headers=headers,
        )


ALLOWLIST = GatedOperation.ALLOWLIST_WRITE
ROUTES = [
    Route(
        "start",
        GatedOperation.SESSION_START,
        "POST",
        "/batch/start",
        201,
        _nothing,
        _session_count,
        json={"target_ssid": "Factory", "target_password": "correct-horse-battery"},
    ),
    Route(
        "allowlist-add", ALLOWLIST, "POST", "/allowlist", 201, _nothing, _description, {"mac": MAC}
    ),
    Route(
        "allowlist-edit",
        ALLOWLIST,
        "PATCH",
        f"/allowlist/{MAC}",
        200,
        _allowlisted,
        _description,
        {"description": "new"},
    ),
    Route(
        "allowlist-remove",
        ALLOWLIST,
        "DELETE",
        f"/allowlist/{MAC}",
        200,
        _allowlisted,
        _description,
    ),
    Route(
        "allowlist-bulk",
        ALLOWLIST,
        "POST",
        "/allowlist/bulk",
        200,
        _nothing,
        _description,
        {"entries": [{"mac": MAC}]},
    ),
    Route(
        "allowlist-import",
        ALLOWLIST,
        "POST",
        "/allowlist/import",
        200,
        _nothing,
        _description,
        content=f"{MAC},imported".encode(),
    ),
    Route(
        "allowlist-bulk-remove",
        ALLOWLIST,
        "POST",
        "/allowlist/bulk-remove",
        200,
        _allowlisted,
        _description,
        {"macs": [MAC]},
    ),
    Route(
        "allowlist-clear",
        ALLOWLIST,
        "DELETE",
        "/allowlist/all",
        200,
        _allowlisted,
        _description,
        params={"confirm": "CONFIRM"},
    ),
    Route(
        "session-discard",
        GatedOperation.SESSION_DISCARD,
        "DELETE",
        f"/sessions/{OLD_SESSION}",
        200,
        _recoverable,
        _old_session_state,
    ),
    Route(
        "history-clear",
        GatedOperation.HISTORY_CLEAR,
        "DELETE",
        "/sessions/history",
        200,
        _closed_long_ago,
        _closed_session_kept,
    ),
]
by_name = pytest.mark.parametrize("route", ROUTES, ids=[r.name for r in ROUTES])


def test_every_gated_operation_has_routes() -> None:
    assert {r.operation for r in ROUTES} == set(GatedOperation)


async def _refused(g: Gated, route: Route, status: int, code: str, **headers: str) -> str:
    """Call `route` and check it was refused with `code` and did nothing; the message."""
    await route.prepare(g)
    before = await route.observe(g)
    body = assert_error(await route.call(g, **headers), status, code)
    assert await route.observe(g) == before, "a refused request changed something"
    message: str = body["error"]["message"]
    return message


async def _passes(g: Gated, route: Route, **headers: str) -> None:
    await route.prepare(g)
    before = await route.observe(g)
    response = await route.call(g, **headers)
    assert response.status_code == route.status, response.text
    assert response.json()["success"] is True
    assert await route.observe(g) != before, "the route answered but changed nothing"


@by_name
async def test_without_code_or_token_is_unauthorized(gated: Gated, route: Route) -> None:
    message = await _refused(gated, route, 401, "UNAUTHORIZED")
    assert "X-TOTP-Code" in message
    assert "X-Step-Up-Token" in message
    assert (AUDIT_GATE, "denied", f"{route.operation}: no TOTP code or step-up token") in (
        await gated.audit()
    )


@by_name
async def test_a_wrong_code_is_totp_invalid(gated: Gated, route: Route) -> None:
    message = await _refused(
        gated, route, 401, "TOTP_INVALID", **{"X-TOTP-Code": gated.wrong_code()}
    )
    assert "wrong" in message


@by_name
async def test_an_old_code_is_totp_expired(gated: Gated, route: Route) -> None:
    await _refused(gated, route, 401, "TOTP_EXPIRED", **{"X-TOTP-Code": gated.code(-3)})


@by_name
async def test_a_fresh_code_passes_once(gated: Gated, route: Route) -> None:
    code = await gated.fresh_code()
    await _passes(gated, route, **{"X-TOTP-Code": code})
    response = await route.call(gated, **{"X-TOTP-Code": code})
    body = assert_error(response, 401, "TOTP_INVALID")
    assert "already used" in body["error"]["message"]
    assert (AUDIT_STEP_UP, "ok", f"{route.operation}: ok") in await gated.audit()


@by_name
async def test_a_token_passes_until_it_expires(gated: Gated, route: Route) -> None:
    token = await gated.token()
    await _passes(gated, route, **{"X-Step-Up-Token": token})
    await gated.clock.advance(600)
    message = await _refused(gated, route, 401, "UNAUTHORIZED", **{"X-Step-Up-Token": token})
    assert "expired" in message


@by_name
async def test_a_token_of_another_api_key_is_refused(gated: Gated, route: Route) -> None:
    token = await gated.token()
    _, other_key = await gated.appliance.services.api_keys.create("other")
    await route.prepare(gated)
    response = await route.call(gated, **{"X-API-Key": other_key, "X-Step-Up-Token": token})
    assert_error(response, 401, "UNAUTHORIZED")


@by_name
async def test_an_ungated_route_needs_no_code(tmp_path: Path, route: Route) -> None:
    others = frozenset(GatedOperation) - {route.operation}
    async with gated_appliance(gated_settings(tmp_path, others)) as g:
        await _passes(g, route)
        assert [a for a in await g.audit() if a[0] in {AUDIT_GATE, AUDIT_STEP_UP}] == []


@by_name
async def test_an_ungated_route_needs_no_enrollment(tmp_path: Path, route: Route) -> None:
    async with gated_appliance(gated_settings(tmp_path, frozenset()), enrolled=False) as g:
        await _passes(g, route)


@by_name
async def test_a_gated_route_without_enrollment_says_how_to_fix_it(
    tmp_path: Path, route: Route
) -> None:
    async with gated_appliance(gated_settings(tmp_path), enrolled=False) as g:
        message = await _refused(g, route, 401, "UNAUTHORIZED", **{"X-TOTP-Code": "123456"})
        assert "orchestrator totp enroll" in message
        assert "security.totp_required_for" in message


@by_name
async def test_the_api_key_is_checked_before_the_code(gated: Gated, route: Route) -> None:
    message = await _refused(
        gated, route, 401, "UNAUTHORIZED", **{"X-API-Key": "", "X-TOTP-Code": gated.code()}
    )
    assert "X-API-Key" in message
    assert [a for a in await gated.audit() if a[0] in {AUDIT_GATE, AUDIT_STEP_UP}] == []


async def test_one_token_covers_every_gated_route(gated: Gated) -> None:
    token = await gated.token()
    for route in ROUTES:
        await _passes(gated, route, **{"X-Step-Up-Token": token})


async def test_routes_outside_the_gated_set_need_no_code(gated: Gated) -> None:
    assert (await gated.client.get(f"{API}/allowlist")).status_code == 200
    assert (await gated.client.get(f"{API}/sessions/history")).status_code == 200
    assert (await gated.client.get(f"{API}/allowlist/stats")).status_code == 200


# --- POST /api/v1/auth/step-up ----------------------------------------------------------------


async def test_step_up_returns_a_token_once(gated: Gated) -> None:
    code = await gated.fresh_code()
    response = await gated.client.post(STEP_UP, json={"code": code})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    data = response.json()["data"]
    assert set(data) == {"token", "expires_at", "expires_in_seconds"}
    assert data["token"].startswith("su_")
    assert data["expires_in_seconds"] == 600
    expires_at = msgspec.convert(data["expires_at"], type=datetime)
    assert expires_at == gated.clock.now() + timedelta(seconds=600)
    again = await gated.client.post(STEP_UP, json={"code": code})
    assert_error(again, 401, "TOTP_INVALID")


async def test_step_up_needs_an_api_key(gated: Gated) -> None:
    response = await gated.client.post(
        STEP_UP, json={"code": gated.code()}, headers={"X-API-Key": ""}
    )
    body = assert_error(response, 401, "UNAUTHORIZED")
    assert "X-API-Key" in body["error"]["message"]
    # The code was not spent on a request without a key.
    assert (await gated.client.post(STEP_UP, json={"code": gated.code()})).status_code == 200


async def test_step_up_tells_expired_from_invalid(gated: Gated) -> None:
    assert_error(
        await gated.client.post(STEP_UP, json={"code": gated.code(-4)}), 401, "TOTP_EXPIRED"
    )
    body = assert_error(
        await gated.client.post(STEP_UP, json={"code": gated.wrong_code()}), 401, "TOTP_INVALID"
    )
    assert body["error"]["retryable"] is True


async def test_step_up_without_enrollment_is_unauthorized(tmp_path: Path) -> None:
    async with gated_appliance(gated_settings(tmp_path), enrolled=False) as g:
        response = await g.client.post(STEP_UP, json={"code": "123456"})
        body = assert_error(response, 401, "UNAUTHORIZED")
        assert "orchestrator totp enroll" in body["error"]["message"]


async def test_step_up_validates_its_body(gated: Gated) -> None:
    assert_error(await gated.client.post(STEP_UP, json={}), 400, "MISSING_PARAMETER")
    assert_error(
        await gated.client.post(STEP_UP, json={"code": "1" * 33}), 400, "VALIDATION_FAILED"
    )


async def test_repeated_failures_are_rate_limited_with_retry_after(gated: Gated) -> None:
    for _ in range(5):
        wrong = await gated.client.post(STEP_UP, json={"code": gated.wrong_code()})
        assert_error(wrong, 401, "TOTP_INVALID")
        await gated.clock.advance(20)
    response = await gated.client.post(STEP_UP, json={"code": gated.code()})
    body = assert_error(response, 429, "RATE_LIMITED")
    assert body["error"]["retryable"] is True
    assert body["error"]["retry_after_seconds"] == 300 - 100
    assert response.headers["retry-after"] == "200"
    # Gated routes with a code are limited too; a valid token still works.
    route = ROUTES[0]
    assert_error(await route.call(gated, **{"X-TOTP-Code": gated.code()}), 429, "RATE_LIMITED")
    await gated.clock.advance(200)
    assert (await gated.client.post(STEP_UP, json={"code": gated.code()})).status_code == 200


async def test_concurrent_step_ups_with_one_code_have_one_winner(gated: Gated) -> None:
    code = gated.code()
    responses = await asyncio.gather(
        *(gated.client.post(STEP_UP, json={"code": code}) for _ in range(2))
    )
    assert sorted(r.status_code for r in responses) == [200, 401]
    loser = next(r for r in responses if r.status_code == 401)
    assert "already used" in assert_error(loser, 401, "TOTP_INVALID")["error"]["message"]


async def test_concurrent_gated_requests_with_one_code_have_one_winner(gated: Gated) -> None:
    code = gated.code()
    macs = ["02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03"]
    responses = await asyncio.gather(
        *(
            gated.client.post(f"{API}/allowlist", json={"mac": mac}, headers={"X-TOTP-Code": code})
            for mac in macs
        )
    )
    assert sorted(r.status_code for r in responses) == [201, 401, 401]
    assert len(await gated.appliance.store.allowlist.list()) == 1


# --- GET /api/v1/auth/status ------------------------------------------------------------------


async def test_status_needs_no_key_and_reflects_enrollment(tmp_path: Path) -> None:
    async with gated_appliance(gated_settings(tmp_path), enrolled=False) as g:
        response = await g.client.get(STATUS, headers={"X-API-Key": ""})
        assert response.status_code == 200
        assert response.json()["data"] == {
            "api_key_required": True,
            "totp_enrolled": False,
            "totp_required_for": [
                "allowlist.write",
                "history.clear",
                "session.discard",
                "session.start",
            ],
        }
        await g.enroll()
        data = (await g.client.get(STATUS, headers={"X-API-Key": ""})).json()["data"]
        assert data["totp_enrolled"] is True


@pytest.mark.parametrize(
    "required",
    [frozenset(), frozenset({GatedOperation.HISTORY_CLEAR, GatedOperation.SESSION_START})],
    ids=["none", "two"],
)
async def test_status_reflects_the_configuration(
    tmp_path: Path, required: frozenset[GatedOperation]
) -> None:
    async with gated_appliance(gated_settings(tmp_path, required)) as g:
        data = (await g.client.get(STATUS)).json()["data"]
        assert data["totp_required_for"] == sorted(required)
        assert data["totp_enrolled"] is True


# --- secrets ----------------------------------------------------------------------------------


async def test_no_secret_reaches_the_audit_log_or_the_logs(
    gated: Gated, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    code = await gated.fresh_code()
    step_up = await gated.client.post(STEP_UP, json={"code": code})
    token = step_up.json()["data"]["token"]
    await gated.client.post(STEP_UP, json={"code": code})
    await ROUTES[1].call(gated, **{"X-Step-Up-Token": token})
    await ROUTES[1].call(gated, **{"X-TOTP-Code": gated.wrong_code()})
    await ROUTES[1].call(gated, **{"X-Step-Up-Token": token + "x"})
    await gated.clock.advance(30)
    gate_code = await gated.fresh_code()
    gated_call = await ROUTES[0].call(gated, **{"X-TOTP-Code": gate_code})
    assert gated_call.status_code == 201

    entries = await gated.appliance.store.audit.page(AuditQuery(limit=1000))
    audit = msgspec.json.encode(entries).decode()
    secrets = [gated.seed, code, gate_code, token, token.removeprefix("su_")]
    for secret in secrets:
        assert secret not in audit
        assert secret not in caplog.text
        assert secret not in gated_call.text
    assert token not in (await gated.client.get(STATUS)).text
