"""The mDNS TXT codec: what a device writes is what the orchestrator reads, and junk is refused."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.protocol import PROTOCOL_VERSION
from orchestrator.protocol.advert import (
    AdvertError,
    Advertisement,
    is_supported,
    parse_txt,
    txt_record,
)
from orchestrator.protocol.document import EXAMPLE_INFO
from orchestrator.protocol.messages import (
    DeviceInfo,
    DeviceState,
    FailureReason,
    LastFailure,
    SecurityScheme,
)

INFO = EXAMPLE_INFO
"""The example device of contracts/device-protocol.md."""
FAILURE = LastFailure(reason=FailureReason.NETWORK_NOT_FOUND, message="no AP", attempts=5)
REQUIRED = ("mac", "fam", "model", "fw", "pv", "state")

Txt = dict[bytes | str, bytes | str | None]


def txt(info: DeviceInfo, **changes: str | None) -> Txt:
    """The TXT record of `info` as zeroconf's reader types it, with `changes` applied."""
    record: Txt = dict(txt_record(info).items())
    record.update(changes)
    return record


def expected(info: DeviceInfo) -> Advertisement:
    return Advertisement(
        mac=info.mac,
        family=info.family,
        model=info.model,
        firmware_version=info.firmware_version,
        protocol_version=info.protocol_version,
        state=info.state,
        security_schemes=tuple(SecurityScheme(s) for s in info.security_schemes),
        failure=FailureReason(info.last_failure.reason)
        if info.last_failure is not None and info.state is DeviceState.FAILED
        else None,
    )


@pytest.mark.parametrize("state", list(DeviceState))
def test_every_state_round_trips(state: DeviceState) -> None:
    info = msgspec.structs.replace(INFO, state=state)
    assert parse_txt(txt(info)) == expected(info)


def test_a_failed_device_advertises_its_reason() -> None:
    info = msgspec.structs.replace(INFO, state=DeviceState.FAILED, last_failure=FAILURE)
    assert txt_record(info)["fail"] == "network_not_found"
    assert parse_txt(txt(info)).failure is FailureReason.NETWORK_NOT_FOUND


def test_a_past_failure_is_not_advertised_once_the_state_moved_on() -> None:
    info = msgspec.structs.replace(INFO, state=DeviceState.PROVISIONED, last_failure=FAILURE)
    assert "fail" not in txt_record(info)
    assert parse_txt(txt(info)).failure is None


def test_bytes_as_zeroconf_hands_them_over_read_like_str() -> None:
    record = txt_record(INFO)
    as_bytes: Txt = {k.encode(): v.encode() for k, v in record.items()}
    mixed: Txt = {k.encode() if i % 2 else k: v for i, (k, v) in enumerate(record.items())}
    assert parse_txt(as_bytes) == parse_txt(mixed) == expected(INFO)


def test_unknown_keys_and_valueless_keys_are_ignored() -> None:
    record = txt(INFO, battery="87", flag=None)
    record[b"hwrev"] = b"3"
    assert parse_txt(record) == expected(INFO)


@pytest.mark.parametrize("key", REQUIRED)
def test_a_missing_required_key_is_refused(key: str) -> None:
    record = txt(INFO)
    del record[key]
    with pytest.raises(AdvertError, match=key):
        parse_txt(record)


@pytest.mark.parametrize("key", REQUIRED)
def test_an_empty_or_valueless_required_key_is_refused(key: str) -> None:
    for record in (txt(INFO, **{key: ""}), txt(INFO, **{key: None})):
        with pytest.raises(AdvertError, match=key):
            parse_txt(record)


@pytest.mark.parametrize(("key", "value"), [("pv", "one"), ("pv", "1.0"), ("state", "asleep")])
def test_bad_values_are_refused(key: str, value: str) -> None:
    with pytest.raises(AdvertError, match="bad value"):
        parse_txt(txt(INFO, **{key: value}))


@pytest.mark.parametrize(
    ("sec", "schemes"),
    [
        ("plain,quantum", (SecurityScheme.PLAIN,)),
        ("quantum", ()),
        ("", ()),
        ("sec2,plain", (SecurityScheme.SEC2, SecurityScheme.PLAIN)),
    ],
)
def test_unknown_security_schemes_are_ignored(
    sec: str, schemes: tuple[SecurityScheme, ...]
) -> None:
    assert parse_txt(txt(INFO, sec=sec)).security_schemes == schemes


def test_a_missing_security_key_means_none() -> None:
    record = txt(INFO)
    del record["sec"]
    assert parse_txt(record).security_schemes == ()


def test_an_unknown_failure_reason_is_ignored() -> None:
    assert parse_txt(txt(INFO, state="failed", fail="battery_low")).failure is None


def test_invalid_utf8_does_not_crash_the_reader() -> None:
    record = txt(INFO)
    del record["model"]
    record[b"model"] = b"\xffcam"
    assert parse_txt(record).model == "\ufffdcam"


def test_every_value_fits_a_txt_string() -> None:
    info = msgspec.structs.replace(INFO, state=DeviceState.FAILED, last_failure=FAILURE)
    for key, value in txt_record(info).items():
        assert len(f"{key}={value}".encode()) <= 255


def test_only_our_protocol_version_is_supported() -> None:
    advert = parse_txt(txt(INFO))
    assert is_supported(advert)
    assert not is_supported(msgspec.structs.replace(advert, protocol_version=PROTOCOL_VERSION + 1))


_TEXT = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40)


@given(family=_TEXT, model=_TEXT, firmware=_TEXT, state=st.sampled_from(DeviceState))
def test_any_text_round_trips(family: str, model: str, firmware: str, state: DeviceState) -> None:
    info = msgspec.structs.replace(
        INFO, family=family, model=model, firmware_version=firmware, state=state
    )
    assert parse_txt(txt(info)) == expected(info)
    encoded = {k.encode(): v.encode() for k, v in txt_record(info).items()}
    assert parse_txt(dict(encoded.items())) == expected(info)
