"""thermal_config.json's credentials: merged in without touching anything else."""

from __future__ import annotations

import datetime
from typing import Any

from orchestrator.device.cloud.credentials import DeviceCredentials, holds, merged, stored
from orchestrator.device.cloud.settings import Server

AT = datetime.datetime(2025, 10, 23, 14, 30, tzinfo=datetime.UTC)
CREDS = DeviceCredentials(
    device_name="thermal-camera-ABC123",
    access_token="tok-123",
    server=Server(host="eu.thingsboard.cloud", port=1883),
)
EXISTING: dict[str, Any] = {
    "device": {
        "device_id": "old-id",
        "device_name": "thermal-camera-OLD000",
        "access_token": "old-token",
        "location": "hall 3",
    },
    "server": {"url": "old.example", "port": 1884, "use_ssl": True, "qos": 1},
    "measurement_spots": [{"name": "spot-1", "x": 10, "y": 20}, {"name": "spot-2", "x": 30}],
    "emissivity": 0.95,
}


def test_the_seeds_layout_with_everything_else_kept_in_place() -> None:
    out = merged(EXISTING, CREDS, AT)
    assert list(out) == ["device", "server", "measurement_spots", "emissivity", "provisioning"]
    assert out["device"] == {
        "location": "hall 3",
        "device_name": "thermal-camera-ABC123",
        "access_token": "tok-123",
        "credentials_type": "ACCESS_TOKEN",
    }
    assert out["server"] == {
        "url": "eu.thingsboard.cloud",
        "port": 1883,
        "use_ssl": False,
        "qos": 1,
    }
    assert out["measurement_spots"] == EXISTING["measurement_spots"]
    assert out["emissivity"] == 0.95
    assert out["provisioning"] == {
        "provisioned_at": "2025-10-23T14:30:00Z",
        "provisioned_from": "provision.json",
    }
    assert EXISTING["device"]["access_token"] == "old-token"  # the input is not modified


def test_an_empty_config_gets_the_seeds_sections() -> None:
    out = merged({}, CREDS, AT)
    assert set(out) == {"device", "server", "provisioning"}


def test_stored_reads_back_what_merged_wrote() -> None:
    out = merged(EXISTING, CREDS, AT)
    assert stored(out) == CREDS
    assert holds(out, CREDS)
    assert not holds(EXISTING, CREDS)


def test_a_device_id_is_kept_when_the_server_gave_one() -> None:
    with_id = DeviceCredentials(
        device_name="n",
        access_token="t",
        server=CREDS.server,
        device_id="550e8400-e29b-41d4-a716-446655440000",
    )
    assert stored(merged({}, with_id, AT)) == with_id


def test_configs_without_usable_credentials_hold_none() -> None:
    assert stored({}) is None
    assert stored({"measurement_spots": []}) is None
    assert (
        stored(
            {"device": {"device_name": "n", "access_token": ""}, "server": {"url": "h", "port": 1}}
        )
        is None
    )
    assert (
        stored(
            {"device": {"device_name": "n", "access_token": "t"}, "server": {"url": "h", "port": 0}}
        )
        is None
    )
    assert stored({"device": "x", "server": {"url": "h", "port": 1}}) is None


def test_repr_hides_the_token() -> None:
    assert "tok-123" not in repr(CREDS)
