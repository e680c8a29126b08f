"""The API client over a mock transport: envelopes, errors and the step-up retry."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import pytest

from orchestrator.client.api import (
    ApiClient,
    ApiError,
    ApplianceUnreachableError,
    StepUpNeededError,
)
from orchestrator.domain.errors import ErrorCode
from orchestrator.domain.totp import GatedOperation

KEY = "dk_abc123_s3cr3tpart"
URL = "http://appliance.test"


class Thing(msgspec.Struct):
    name: str


def envelope(data: Any) -> dict[str, Any]:
    return {"success": True, "data": data, "correlation_id": "c", "timestamp": "t"}


def failure(code: str, message: str, status: int, **extra: Any) -> httpx.Response:
    error = {"code": code, "message": message, "retryable": False, **extra}
    body = {"success": False, "error": error, "code": code, "correlation_id": "c"}
    return httpx.Response(status, json=body)


@dataclass
class Appliance:
    """Answers requests with `handler` and remembers them."""

    handler: Callable[[httpx.Request], httpx.Response]
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def client(self, **kwargs: Any) -> ApiClient:
        return ApiClient(URL, KEY, transport=httpx.MockTransport(self), **kwargs)


async def test_a_success_yields_its_data_and_sends_the_key() -> None:
    appliance = Appliance(lambda _: httpx.Response(200, json=envelope({"name": "x"})))
    async with appliance.client() as client:
        thing = await client.call("POST", "/things", Thing, json={"a": 1})
        got = await client.get("/things/1", Thing, verbose="yes")
    assert thing == got == Thing(name="x")
    post, get = appliance.requests
    assert post.url == f"{URL}/api/v1/provisioning/things"
    assert post.headers["X-API-Key"] == KEY
    assert post.headers["Content-Type"] == "application/json"
    assert json.loads(post.content) == {"a": 1}
    assert get.url == f"{URL}/api/v1/provisioning/things/1?verbose=yes"


async def test_a_bodyless_post_still_says_json() -> None:
    appliance = Appliance(lambda _: httpx.Response(202, json=envelope({"name": "x"})))
    async with appliance.client() as client:
        await client.call("POST", "/go", Thing)
    assert appliance.requests[0].headers["Content-Type"] == "application/json"


async def test_an_error_envelope_becomes_an_api_error_with_its_code() -> None:
    appliance = Appliance(
        lambda _: failure(
            "RATE_LIMITED", "too many wrong TOTP codes", 429, retry_after_seconds=30, details="d"
        )
    )
    async with appliance.client() as client:
        with pytest.raises(ApiError) as caught:
            await client.get("/x", Thing)
    error = caught.value
    assert (error.code, error.message, error.status) == (
        ErrorCode.RATE_LIMITED,
        "too many wrong TOTP codes",
        429,
    )
    assert (error.details, error.retry_after_s) == ("d", 30)


async def test_an_unknown_code_is_kept_in_the_details() -> None:
    appliance = Appliance(lambda _: failure("BRAND_NEW", "something new", 409))
    async with appliance.client() as client:
        with pytest.raises(ApiError) as caught:
            await client.get("/x", Thing)
    assert caught.value.code is ErrorCode.INTERNAL_ERROR
    assert caught.value.details == "BRAND_NEW"
    assert caught.value.message == "something new"


async def test_an_answer_without_an_envelope_is_named_as_such() -> None:
    appliance = Appliance(lambda _: httpx.Response(502, text="<html>bad gateway</html>"))
    async with appliance.client() as client:
        with pytest.raises(ApiError) as caught:
            await client.get("/x", Thing)
    assert caught.value.status == 502
    assert "without an error envelope" in caught.value.message


async def test_a_dead_appliance_is_unreachable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with Appliance(refuse).client() as client:
        with pytest.raises(ApplianceUnreachableError) as caught:
            await client.get("/x", Thing)
    assert caught.value.code is ErrorCode.NETWORK_ERROR
    assert f"cannot reach the appliance at {URL}" in caught.value.message
    assert KEY not in caught.value.message


def test_the_key_never_shows_in_the_repr() -> None:
    assert KEY not in repr(ApiClient(URL, KEY))


def gate(
    *, enrolled: bool = True, key_ok: bool = True, first: str = "UNAUTHORIZED"
) -> Callable[[httpx.Request], httpx.Response]:
    """An appliance gating allowlist writes: it wants a code, and takes 123456."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/auth/status":
            required = ["allowlist.write"]
            data = {
                "api_key_required": True,
                "totp_enrolled": enrolled,
                "totp_required_for": required,
            }
            return httpx.Response(200, json=envelope(data))
        if not key_ok:
            return failure("UNAUTHORIZED", "unknown or revoked API key", 401)
        if request.url.path.endswith("/network/status"):
            return httpx.Response(200, json=envelope({}))
        code = request.headers.get("X-TOTP-Code")
        if code == "123456":
            return httpx.Response(200, json=envelope({"name": "written"}))
        if code:
            return failure("TOTP_INVALID", "the TOTP code is wrong", 401)
        return failure(first, "allowlist.write requires TOTP step-up", 401)

    return handle


async def test_a_gated_call_asks_for_a_code_and_retries_once() -> None:
    asked: list[str] = []

    def prompt(question: str) -> str:
        asked.append(question)
        return " 123456\n"

    appliance = Appliance(gate())
    async with appliance.client(prompt=prompt) as client:
        thing = await client.call(
            "POST", "/allowlist", Thing, json={}, gated=GatedOperation.ALLOWLIST_WRITE
        )
    assert thing.name == "written"
    assert asked == ["TOTP code for allowlist.write (from the authenticator app): "]
    paths = [(r.url.path, r.headers.get("X-TOTP-Code")) for r in appliance.requests]
    assert paths == [
        ("/api/v1/provisioning/allowlist", None),
        ("/api/v1/auth/status", None),
        ("/api/v1/provisioning/network/status", None),
        ("/api/v1/provisioning/allowlist", "123456"),
    ]


async def test_a_code_given_up_front_goes_with_the_first_gated_call_only() -> None:
    appliance = Appliance(gate())
    async with appliance.client(totp="123456") as client:
        await client.call("POST", "/allowlist", Thing, gated=GatedOperation.ALLOWLIST_WRITE)
        with pytest.raises(StepUpNeededError):
            await client.call("POST", "/allowlist", Thing, gated=GatedOperation.ALLOWLIST_WRITE)
    assert appliance.requests[0].headers["X-TOTP-Code"] == "123456"
    assert "X-TOTP-Code" not in appliance.requests[1].headers


async def test_a_wrong_code_up_front_is_asked_for_again() -> None:
    appliance = Appliance(gate())
    async with appliance.client(totp="000000", prompt=lambda _: "123456") as client:
        thing = await client.call("POST", "/x", Thing, gated=GatedOperation.ALLOWLIST_WRITE)
    assert thing.name == "written"
    assert [r.headers.get("X-TOTP-Code") for r in appliance.requests] == ["000000", "123456"]


async def test_without_an_answer_the_refusal_says_step_up_is_needed() -> None:
    appliance = Appliance(gate())
    async with appliance.client() as client:
        with pytest.raises(StepUpNeededError) as caught:
            await client.call("POST", "/x", Thing, gated=GatedOperation.ALLOWLIST_WRITE)
    assert caught.value.code is ErrorCode.UNAUTHORIZED
    assert caught.value.message == "allowlist.write requires TOTP step-up"


@pytest.mark.parametrize(
    ("enrolled", "key_ok", "operation"),
    [
        (False, True, GatedOperation.ALLOWLIST_WRITE),  # no seed: a code cannot help
        (True, False, GatedOperation.ALLOWLIST_WRITE),  # the key is what is wrong
        (True, True, GatedOperation.SESSION_START),  # not gated: the refusal is about else
    ],
)
async def test_no_code_is_asked_for_when_a_code_would_not_help(
    *, enrolled: bool, key_ok: bool, operation: GatedOperation
) -> None:
    def prompt(_: str) -> str:
        raise AssertionError("asked for a code")

    appliance = Appliance(gate(enrolled=enrolled, key_ok=key_ok))
    async with appliance.client(prompt=prompt) as client:
        with pytest.raises(ApiError) as caught:
            await client.call("POST", "/x", Thing, gated=operation)
    assert not isinstance(caught.value, StepUpNeededError)
    assert caught.value.code is ErrorCode.UNAUTHORIZED


async def test_an_ungated_call_is_never_retried() -> None:
    appliance = Appliance(gate())
    async with appliance.client(prompt=lambda _: "123456") as client:
        with pytest.raises(ApiError):
            await client.call("POST", "/x", Thing)
    assert len(appliance.requests) == 1
