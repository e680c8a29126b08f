"""provision.json: the seed's schema and every validation rule."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from orchestrator.device.cloud.settings import ProvisionSettings, Server, parse_server

SEED_EXAMPLE = {
    "server_url": "eu.thingsboard.cloud",
    "server_port": 1883,
    "provision_device_key": "your-provision-key",
    "provision_device_secret": "your-provision-secret",
    "device_name_prefix": "thermal-camera",
    "timeout_seconds": 30,
}


def decode(fields: dict[str, Any]) -> ProvisionSettings:
    return msgspec.json.decode(msgspec.json.encode(fields), type=ProvisionSettings)


def test_the_seeds_example_is_valid() -> None:
    settings = decode(SEED_EXAMPLE)
    assert settings.server == Server(host="eu.thingsboard.cloud", port=1883, use_ssl=False)
    assert settings.prefix == "thermal-camera"
    assert settings.timeout_seconds == 30


def test_prefix_and_timeout_are_optional() -> None:
    fields = {
        k: v for k, v in SEED_EXAMPLE.items() if k not in {"device_name_prefix", "timeout_seconds"}
    }
    settings = decode(fields)
    assert settings.prefix == "thermal-camera"
    assert settings.timeout_seconds == 30


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"server_port": 0}, "server_port"),
        ({"server_port": 65_536}, "server_port"),
        ({"server_port": "1883"}, "server_port"),
        ({"provision_device_key": ""}, "provision_device_key"),
        ({"provision_device_key": "   "}, "provision_device_key"),
        ({"provision_device_secret": ""}, "provision_device_secret"),
        ({"device_name_prefix": "Thermal"}, "device_name_prefix"),
        ({"device_name_prefix": "cam_1"}, "device_name_prefix"),
        ({"device_name_prefix": ""}, "device_name_prefix"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"timeout_seconds": -5}, "timeout_seconds"),
        ({"timeout_seconds": 1.5}, "timeout_seconds"),
        ({"server_url": ""}, "server_url"),
        ({"server_url": "https://tb.example.com"}, "scheme"),
        ({"server_url": "tb example com"}, "not a host"),
        ({"server_url": "tb.example.com/api"}, "nothing more"),
        ({"server_url": "mqtt://tb.example.com:8883"}, "port 8883"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_each_rule_is_enforced_and_named(change: dict[str, Any], where: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=where):
        decode(SEED_EXAMPLE | change)


@pytest.mark.parametrize(
    "missing", ["server_url", "server_port", "provision_device_key", "provision_device_secret"]
)
def test_required_fields(missing: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=missing):
        decode({k: v for k, v in SEED_EXAMPLE.items() if k != missing})


@pytest.mark.parametrize(
    ("url", "port", "expected"),
    [
        ("eu.thingsboard.cloud", 1883, Server(host="eu.thingsboard.cloud", port=1883)),
        (
            "eu.thingsboard.cloud",
            8883,
            Server(host="eu.thingsboard.cloud", port=8883, use_ssl=True),
        ),
        ("mqtt://tb.local", 8883, Server(host="tb.local", port=8883)),
        ("mqtts://tb.local:8884", 8884, Server(host="tb.local", port=8884, use_ssl=True)),
        ("ssl://tb.local/", 8884, Server(host="tb.local", port=8884, use_ssl=True)),
        ("tcp://10.0.0.5", 1883, Server(host="10.0.0.5", port=1883)),
        ("[::1]", 1883, Server(host="::1", port=1883)),
        ("  TB.Example.COM ", 1883, Server(host="tb.example.com", port=1883)),
    ],
)
def test_server_urls(url: str, port: int, expected: Server) -> None:
    assert parse_server(url, port) == expected


def test_repr_names_no_key_or_secret() -> None:
    text = repr(decode(SEED_EXAMPLE))
    assert "your-provision-key" not in text
    assert "your-provision-secret" not in text
    assert "eu.thingsboard.cloud" in text
