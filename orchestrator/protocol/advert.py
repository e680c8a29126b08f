"""The mDNS advertisement: service type `_delicasa._tcp` and its TXT record.

TXT values are short strings (each key=value fits in 255 bytes). Keys: `mac`, `fam` (family),
`model`, `fw` (firmware), `pv` (protocol version), `state`, `sec` (comma-separated security
schemes) and, after a failure, `fail` (the reason). Unknown keys are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from orchestrator.protocol import PROTOCOL_VERSION
from orchestrator.protocol.messages import DeviceInfo, DeviceState, FailureReason, SecurityScheme

SERVICE_TYPE = "_delicasa._tcp.local."


class AdvertError(ValueError):
    """A TXT record that does not describe a device of ours."""


class Advertisement(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What a device says about itself over mDNS."""

    mac: str
    family: str
    model: str
    firmware_version: str
    protocol_version: int
    state: DeviceState
    security_schemes: tuple[SecurityScheme, ...]
    failure: FailureReason | None = None


def txt_record(info: DeviceInfo) -> dict[str, str]:
    """The TXT properties advertising `info`."""
    record = {
        "mac": info.mac,
        "fam": info.family,
        "model": info.model,
        "fw": info.firmware_version,
        "pv": str(info.protocol_version),
        "state": info.state.value,
        "sec": ",".join(info.security_schemes),
    }
    if info.last_failure is not None and info.state is DeviceState.FAILED:
        record["fail"] = str(info.last_failure.reason)
    return record


def parse_txt(
    properties: Mapping[bytes, bytes | None]
    | Mapping[str, str | None]
    | Mapping[bytes | str, bytes | str | None],
) -> Advertisement:
    """Read a TXT record (as zeroconf hands it over); AdvertError says what is wrong."""
    items: list[tuple[bytes | str, bytes | str | None]] = list(properties.items())
    text = {_text(k): _text(v) for k, v in items if v is not None}
    missing = [k for k in ("mac", "fam", "model", "fw", "pv", "state") if not text.get(k)]
    if missing:
        raise AdvertError(f"TXT record lacks {', '.join(missing)}")
    try:
        version = int(text["pv"])
        state = DeviceState(text["state"])
    except ValueError as exc:
        raise AdvertError(f"TXT record has a bad value: {exc}") from exc
    schemes = tuple(
        SecurityScheme(s)
        for s in text.get("sec", "").split(",")
        if s in SecurityScheme._value2member_map_
    )
    failure = text.get("fail", "")
    return Advertisement(
        mac=text["mac"],
        family=text["fam"],
        model=text["model"],
        firmware_version=text["fw"],
        protocol_version=version,
        state=state,
        security_schemes=schemes,
        failure=FailureReason(failure) if failure in FailureReason._value2member_map_ else None,
    )


def is_supported(advert: Advertisement) -> bool:
    """Whether this orchestrator speaks the device's protocol version."""
    return advert.protocol_version == PROTOCOL_VERSION


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
