"""The credentials a registered device keeps in thermal_config.json (seed 001's
DeviceCredentials), and how they go into and come out of that file's JSON object without
touching anything else in it (measurement spots and the like)."""

from __future__ import annotations

import datetime
from typing import Annotated, Any

import msgspec

from orchestrator.device.cloud.settings import Port, Server, parse_server

CREDENTIAL_KEYS = ("device_id", "device_name", "access_token", "credentials_type")
PROVISIONED_FROM = "provision.json"


class DeviceCredentials(msgspec.Struct, frozen=True, kw_only=True):
    """Who the device is in ThingsBoard and how it connects there."""

    device_name: str
    access_token: str
    server: Server
    credentials_type: str = "ACCESS_TOKEN"
    device_id: str | None = None
    """Only if the server named one: ThingsBoard's provisioning answer does not."""

    def __repr__(self) -> str:
        return (
            f"DeviceCredentials(device_name={self.device_name!r}, server={self.server!r}, "
            f"device_id={self.device_id!r})"
        )


class _Device(msgspec.Struct, frozen=True, kw_only=True):
    device_name: Annotated[str, msgspec.Meta(min_length=1)]
    access_token: Annotated[str, msgspec.Meta(min_length=1)]
    credentials_type: str = "ACCESS_TOKEN"
    device_id: str | None = None


class _Server(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    port: Port
    use_ssl: bool = False


class _Stored(msgspec.Struct, frozen=True, kw_only=True):
    """The parts of thermal_config.json we read; everything else is someone else's."""

    device: _Device
    server: _Server


def merged(
    config: dict[str, Any], credentials: DeviceCredentials, provisioned_at: datetime.datetime
) -> dict[str, Any]:
    """`config` with `credentials` in its `device` and `server` sections and a fresh
    `provisioning` section; every other key, and other keys of those sections, kept in place."""
    device = {
        key: value
        for key, value in _section(config, "device").items()
        if key not in CREDENTIAL_KEYS
    }
    if credentials.device_id is not None:
        device["device_id"] = credentials.device_id
    device["device_name"] = credentials.device_name
    device["access_token"] = credentials.access_token
    device["credentials_type"] = credentials.credentials_type
    server = dict(_section(config, "server"))
    server["url"] = credentials.server.host
    server["port"] = credentials.server.port
    server["use_ssl"] = credentials.server.use_ssl
    provisioning = {
        "provisioned_at": provisioned_at.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "provisioned_from": PROVISIONED_FROM,
    }
    out = dict(config)
    out.update(device=device, server=server, provisioning=provisioning)
    return out


def stored(config: dict[str, Any]) -> DeviceCredentials | None:
    """The credentials in `config`, or None if it holds none (or not in a usable shape)."""
    try:
        found = msgspec.convert(config, _Stored)
        host = parse_server(found.server.url, found.server.port).host
    except (msgspec.ValidationError, ValueError):
        return None
    return DeviceCredentials(
        device_name=found.device.device_name,
        access_token=found.device.access_token,
        credentials_type=found.device.credentials_type,
        device_id=found.device.device_id,
        server=Server(host=host, port=found.server.port, use_ssl=found.server.use_ssl),
    )


def holds(config: dict[str, Any], credentials: DeviceCredentials) -> bool:
    """Whether `config` already holds exactly these credentials (a finished earlier run)."""
    return stored(config) == credentials


def _section(config: dict[str, Any], key: str) -> dict[str, Any]:
    value = config.get(key)
    return value if isinstance(value, dict) else {}
