"""Broker settings and the names devices get on the broker."""

from __future__ import annotations

import msgspec
import pytest

from orchestrator.broker.settings import (
    BrokerSettings,
    broker_endpoint,
    device_broker_url,
    device_status_topic,
    device_topic_prefix,
    device_username,
    is_status_topic,
    status_filter,
)
from orchestrator.device.mqtt import client_id
from tests.broker.conftest import MAC_A


def test_a_device_username_is_its_client_id() -> None:
    assert device_username(MAC_A) == "dev-02dc0000000a" == client_id(MAC_A)


def test_device_topics_live_under_the_topic_base() -> None:
    settings = BrokerSettings(topic_base="plant/7")
    assert device_topic_prefix(settings, MAC_A) == "plant/7/02dc0000000a"
    assert device_status_topic(settings, MAC_A) == "plant/7/02dc0000000a/status"
    assert status_filter(settings.topic_base) == "plant/7/+/status"
    assert is_status_topic("plant/7", device_status_topic(settings, MAC_A))


@pytest.mark.parametrize(
    "topic",
    [
        "plant/7/status",
        "plant/8/02dc0000000a/status",
        "plant/7/02dc0000000a/state",
        "plant/7/02dc0000000a/status/x",
        "plant/7/+/status",
        "plant/7/#/status",
        "plant/7//status",
    ],
)
def test_other_topics_are_not_status_topics(topic: str) -> None:
    assert not is_status_topic("plant/7", topic)


def test_devices_get_the_orchestrators_url_unless_told_otherwise() -> None:
    assert device_broker_url(BrokerSettings(url="mqtt://10.0.0.1")) == "mqtt://10.0.0.1"
    settings = BrokerSettings(url="mqtt://127.0.0.1:1883", device_url="mqtts://broker.lan:8883")
    assert device_broker_url(settings) == "mqtts://broker.lan:8883"


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("mqtt://10.0.0.1", ("10.0.0.1", 1883, False)),
        ("mqtts://broker.lan", ("broker.lan", 8883, True)),
        ("mqtt://h:2000", ("h", 2000, False)),
    ],
)
def test_endpoints(url: str, endpoint: tuple[str, int, bool]) -> None:
    assert broker_endpoint(url) == endpoint


def test_settings_come_from_strings_and_refuse_unknown_fields() -> None:
    settings = msgspec.convert(
        {"password": "pw", "command_timeout_s": "2.5"}, BrokerSettings, strict=False
    )
    assert settings.command_timeout_s == 2.5
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"pasword": "typo"}, BrokerSettings)
    for bad in (
        {"url": "http://x"},
        {"topic_base": "a/#"},
        {"topic_base": "a/"},
        {"topic_base": "$SYS"},
    ):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(bad, BrokerSettings)


def test_the_password_stays_out_of_the_repr() -> None:
    settings = BrokerSettings(password="hunter2")
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings)
