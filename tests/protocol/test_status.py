"""The MQTT status codec: tagged payloads, forward compatible, garbage refused."""

from __future__ import annotations

import msgspec
import pytest

from orchestrator.protocol.status import (
    QOS,
    Offline,
    Online,
    decode_status,
    encode_status,
    status_topic,
)

ONLINE = Online(
    nonce="q8Z3m1Xw9LkP2vT7yR4s",
    mac="24:0A:C4:12:34:56",
    ip="10.20.0.117",
    firmware_version="1.4.2",
    device_name="cam-0042",
)


def test_the_topic_hangs_off_the_prefix() -> None:
    assert status_topic("delicasa/cam-0042") == "delicasa/cam-0042/status"
    assert status_topic("delicasa/cam-0042/") == "delicasa/cam-0042/status"


def test_status_is_published_at_least_once() -> None:
    assert QOS == 1


def test_online_carries_its_tag_and_round_trips() -> None:
    payload = encode_status(ONLINE)
    assert msgspec.json.decode(payload)["state"] == "online"
    assert decode_status(payload) == ONLINE


def test_offline_carries_its_tag_and_round_trips() -> None:
    offline = Offline(mac="24:0A:C4:12:34:56")
    payload = encode_status(offline)
    assert msgspec.json.decode(payload) == {"state": "offline", "mac": "24:0A:C4:12:34:56"}
    assert decode_status(payload) == offline


def test_unknown_fields_are_ignored() -> None:
    payload = msgspec.json.encode(
        {**msgspec.to_builtins(ONLINE), "state": "online", "uptime_s": 12, "extra": {"a": [1]}}
    )
    assert decode_status(payload) == ONLINE
    assert decode_status(b'{"mac":"x","state":"offline","battery":0.5}') == Offline(mac="x")


@pytest.mark.parametrize(
    "payload",
    [
        b'{"state":"asleep","mac":"x"}',  # unknown tag
        b'{"mac":"x"}',  # no tag
        b'{"state":"online","mac":"x"}',  # online without its nonce
        b'{"state":"offline","mac":5}',  # wrong type
        b"[]",
        b'"online"',
    ],
)
def test_wrong_shapes_are_validation_errors(payload: bytes) -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_status(payload)


@pytest.mark.parametrize("payload", [b"", b"online", b"{", b"\xff\xfe"])
def test_garbage_is_a_decode_error(payload: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        decode_status(payload)
