"""The device HTTP messages: unknown fields are ignored (firmware evolves), required ones and
bounds are enforced."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from orchestrator.protocol import PROTOCOL_VERSION
from orchestrator.protocol.document import (
    EXAMPLE_CREDENTIALS,
    EXAMPLE_ERROR,
    EXAMPLE_FAILED,
    EXAMPLE_INFO,
    EXAMPLE_RECEIPT,
    message_types,
)
from orchestrator.protocol.messages import (
    API_PREFIX,
    ENDPOINTS,
    ERROR_STATUS,
    Credentials,
    DeviceErrorCode,
    DeviceInfo,
    ErrorAnswer,
    IdentifyRequest,
)

EXAMPLES: list[msgspec.Struct] = [
    EXAMPLE_INFO,
    EXAMPLE_FAILED,
    EXAMPLE_CREDENTIALS,
    EXAMPLE_RECEIPT,
    EXAMPLE_ERROR,
]


def _with(message: msgspec.Struct, **changes: Any) -> bytes:
    return msgspec.json.encode({**msgspec.to_builtins(message), **changes})


def _without(message: msgspec.Struct, *path: str) -> bytes:
    body: dict[str, Any] = msgspec.to_builtins(message)
    node = body
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return msgspec.json.encode(body)


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_unknown_fields_are_ignored(message: msgspec.Struct) -> None:
    payload = _with(message, from_the_future=True, another={"nested": [1, 2]})
    assert msgspec.json.decode(payload, type=type(message)) == message


def test_unknown_nested_fields_are_ignored() -> None:
    body = msgspec.to_builtins(EXAMPLE_FAILED)
    body["last_failure"]["channel"] = 11
    decoded = msgspec.json.decode(msgspec.json.encode(body), type=DeviceInfo)
    assert decoded == EXAMPLE_FAILED


@pytest.mark.parametrize(
    ("message", "path"),
    [
        (EXAMPLE_INFO, ("mac",)),
        (EXAMPLE_INFO, ("state",)),
        (EXAMPLE_CREDENTIALS, ("nonce",)),
        (EXAMPLE_CREDENTIALS, ("mqtt", "topic_prefix")),
        (EXAMPLE_ERROR, ("error", "code")),
    ],
)
def test_required_fields_are_enforced(message: msgspec.Struct, path: tuple[str, ...]) -> None:
    with pytest.raises(msgspec.ValidationError, match=f"missing required field `{path[-1]}`"):
        msgspec.json.decode(_without(message, *path), type=type(message))


@pytest.mark.parametrize(
    ("message", "changes"),
    [
        (EXAMPLE_CREDENTIALS, {"nonce": "short"}),
        (EXAMPLE_CREDENTIALS, {"nonce": "has spaces in it, too many"}),
        (EXAMPLE_CREDENTIALS, {"target_ssid": ""}),
        (EXAMPLE_CREDENTIALS, {"target_ssid": "x" * 33}),
        (EXAMPLE_INFO, {"rssi": 3}),
        (EXAMPLE_INFO, {"state": "asleep"}),
        (EXAMPLE_INFO, {"protocol_version": "1"}),
    ],
)
def test_bounds_and_types_are_enforced(message: msgspec.Struct, changes: dict[str, Any]) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(_with(message, **changes), type=type(message))


def test_bad_broker_urls_are_refused() -> None:
    body = msgspec.to_builtins(EXAMPLE_CREDENTIALS)
    body["mqtt"]["broker_url"] = "http://10.0.0.1/path"
    with pytest.raises(msgspec.ValidationError, match="broker_url"):
        msgspec.json.decode(msgspec.json.encode(body), type=Credentials)


def test_identify_defaults_to_five_seconds_and_is_bounded() -> None:
    assert msgspec.json.decode(b"{}", type=IdentifyRequest).seconds == 5
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"seconds": 0}', type=IdentifyRequest)


def test_absent_optional_fields_stay_off_the_wire() -> None:
    body = msgspec.json.decode(msgspec.json.encode(EXAMPLE_INFO))
    assert "last_failure" not in body
    assert "device_name" not in body


def test_every_error_code_has_one_status_and_decodes() -> None:
    assert set(ERROR_STATUS) == set(DeviceErrorCode)
    for code in DeviceErrorCode:
        payload = msgspec.json.encode(
            {"protocol_version": PROTOCOL_VERSION, "error": {"code": code.value, "message": "m"}}
        )
        assert msgspec.json.decode(payload, type=ErrorAnswer).error.code is code


def test_endpoints_are_unique_and_versioned() -> None:
    keys = [(e.method, e.path) for e in ENDPOINTS]
    assert len(keys) == len(set(keys))
    for endpoint in ENDPOINTS:
        assert endpoint.path.startswith(f"{API_PREFIX}/")
        assert endpoint.method in {"GET", "POST"}
        assert (endpoint.request is None) == (endpoint.method == "GET")
        assert 200 <= endpoint.status < 300


@pytest.mark.parametrize("name", sorted(message_types()))
def test_messages_are_frozen_and_tolerate_unknown_fields(name: str) -> None:
    message = message_types()[name]
    for cls in getattr(message, "__args__", (message,)):
        assert cls.__struct_config__.frozen
        assert not cls.__struct_config__.forbid_unknown_fields


def test_an_unknown_failure_reason_from_newer_firmware_is_tolerated() -> None:
    body = msgspec.to_builtins(EXAMPLE_FAILED)
    body["last_failure"]["reason"] = "battery_low"
    body["security_schemes"] = ["plain", "sec9"]
    info = msgspec.json.decode(msgspec.json.encode(body), type=DeviceInfo)
    assert info.last_failure is not None
    assert info.last_failure.reason == "battery_low"
    assert info.security_schemes == ["plain", "sec9"]
