"""The wire format, checked against the stand-in's registry (ThingsBoard's own rules)."""

from __future__ import annotations

import msgspec
import pytest

from orchestrator.device.cloud.errors import CloudError, ErrorCode
from orchestrator.device.cloud.messages import (
    Issued,
    ProvisionRequest,
    decode_answer,
    encode_request,
)
from orchestrator.sim.thingsboard_registry import (
    Credentials,
    ProvisionMode,
    ProvisionProfile,
    Registry,
)

KEY, SECRET = "profile-key-123", "profile-secret-456"
NAME, TOKEN = "thermal-camera-ABC123", "aB3dE5gH7jK9mN1pQ3sT"


def request(**changes: str) -> ProvisionRequest:
    fields = {
        "provision_device_key": KEY,
        "provision_device_secret": SECRET,
        "device_name": NAME,
        "token": TOKEN,
    } | changes
    return ProvisionRequest(**fields)


def registry(*, legacy_fields: bool = False) -> Registry:
    return Registry((ProvisionProfile(key=KEY, secret=SECRET),), legacy_fields=legacy_fields)


def test_the_request_has_thingsboards_field_names() -> None:
    assert msgspec.json.decode(encode_request(request())) == {
        "provisionDeviceKey": KEY,
        "provisionDeviceSecret": SECRET,
        "deviceName": NAME,
        "credentialsType": "ACCESS_TOKEN",
        "token": TOKEN,
    }


def test_thingsboard_creates_the_device_with_our_token_and_we_read_the_answer() -> None:
    tb = registry()
    result = tb.provision(encode_request(request()))
    assert tb.devices[NAME].credentials.token == TOKEN
    assert decode_answer(result.payload, device_name=NAME) == Issued(access_token=TOKEN)


def test_the_old_field_names_are_accepted() -> None:
    result = registry(legacy_fields=True).provision(encode_request(request()))
    assert b"provisionDeviceStatus" in result.payload
    assert decode_answer(result.payload, device_name=NAME).access_token == TOKEN


def test_a_wrong_secret_is_not_found_with_an_actionable_message() -> None:
    result = registry().provision(encode_request(request(provision_device_secret="nope")))
    with pytest.raises(CloudError) as caught:
        decode_answer(result.payload, device_name=NAME)
    assert caught.value.code is ErrorCode.PROVISION_NOT_FOUND
    assert "Provision data was not found!" in caught.value.message
    assert "provision_device_secret in provision.json" in caught.value.message
    assert "nope" not in caught.value.message


def test_a_taken_name_is_failure_naming_the_device() -> None:
    tb = registry()
    tb.add_device(NAME, Credentials.access_token("someone-elses-token"))
    result = tb.provision(encode_request(request()))
    with pytest.raises(CloudError) as caught:
        decode_answer(result.payload, device_name=NAME)
    assert caught.value.code is ErrorCode.PROVISION_FAILURE
    assert NAME in caught.value.message
    assert "provision.state.json" in caught.value.message


def test_a_pre_provisioned_device_gets_the_servers_token_not_ours() -> None:
    profile = ProvisionProfile(
        key=KEY,
        secret=SECRET,
        mode=ProvisionMode.CHECK_PRE_PROVISIONED_DEVICES,
        pre_provisioned={NAME: "server-chosen-token"},
    )
    result = Registry((profile,)).provision(encode_request(request()))
    assert decode_answer(result.payload, device_name=NAME).access_token == "server-chosen-token"


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        b'{"status": "MAYBE"}',
        b"{}",
        b'{"status": "SUCCESS"}',
        b'{"status": "SUCCESS", "credentialsValue": ""}',
        b'{"status": "SUCCESS", "credentialsValue": "has space"}',
        b'{"status": "SUCCESS", "credentialsValue": 42}',
        b'{"status": "SUCCESS", "credentialsType": "MQTT_BASIC", "credentialsValue": {"a": "b"}}',
        b'{"status": "SUCCESS", "credentialsValue": "tok", "deviceName": "someone-else"}',
        b'{"status": "SUCCESS", "credentialsValue": "tok", "deviceId": "not-a-uuid"}',
        b'{"status": "SUCCESS", "credentialsValue": "' + b"x" * 5000 + b'"}',
    ],
)
def test_answers_that_do_not_hold_together_are_invalid(payload: bytes) -> None:
    with pytest.raises(CloudError) as caught:
        decode_answer(payload, device_name=NAME)
    assert caught.value.code is ErrorCode.ANSWER_INVALID


def test_a_device_id_and_name_are_checked_when_present() -> None:
    payload = msgspec.json.encode(
        {
            "status": "SUCCESS",
            "credentialsValue": TOKEN,
            "deviceName": NAME,
            "deviceId": "550e8400-e29b-41d4-a716-446655440000",
            "somethingNew": True,
        }
    )
    issued = decode_answer(payload, device_name=NAME)
    assert issued.device_id == "550e8400-e29b-41d4-a716-446655440000"


def test_reprs_hide_secrets() -> None:
    assert SECRET not in repr(request())
    assert TOKEN not in repr(request())
    assert TOKEN not in repr(Issued(access_token=TOKEN))
