"""ThingsBoard's MQTT device provisioning on the wire: topics, the request, and the answer
checked per seed 001 (as far as the real server's answers allow: see `decode_answer`)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import msgspec

from orchestrator.device.cloud.errors import CloudError, ErrorCode

PROVISION_USERNAME = "provision"
REQUEST_TOPIC = "/provision/request"
RESPONSE_TOPIC = "/provision/response"
TELEMETRY_TOPIC = "v1/devices/me/telemetry"
ACCESS_TOKEN = "ACCESS_TOKEN"  # noqa: S105 - a kind of credential, not one
MAX_ANSWER_BYTES = 4096
# ThingsBoard's tokens are free-form strings (not base64, whatever seed 001 says); a token is
# also an MQTT username, so it must be printable and without white space.
_TOKEN = re.compile(r"^[\x21-\x7e]{1,255}$")


class ProvisionRequest(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What goes to `/provision/request`: the profile's key and secret, our name, and the
    access token we chose (so a lost answer can be recovered by confirming it)."""

    provision_device_key: str
    provision_device_secret: str
    device_name: str
    credentials_type: str = ACCESS_TOKEN
    token: str

    def __repr__(self) -> str:
        return f"ProvisionRequest(device_name={self.device_name!r})"


class Issued(msgspec.Struct, frozen=True, kw_only=True):
    """What a SUCCESS answer gives: the access token, and a device id if the server sent one
    (ThingsBoard does not)."""

    access_token: str
    device_id: str | None = None

    def __repr__(self) -> str:
        return f"Issued(device_id={self.device_id!r})"


class _Answer(msgspec.Struct, frozen=True, kw_only=True):
    """Any answer; unknown fields are ignored (servers add some)."""

    status: str | None = None
    provision_device_status: str | None = msgspec.field(default=None, name="provisionDeviceStatus")
    """The old docs' name of `status`."""
    credentials_type: str | None = msgspec.field(default=None, name="credentialsType")
    credentials_value: Any = msgspec.field(default=None, name="credentialsValue")
    access_token: str | None = msgspec.field(default=None, name="accessToken")
    """The old docs' name of an ACCESS_TOKEN `credentialsValue`."""
    error_msg: str | None = msgspec.field(default=None, name="errorMsg")
    device_id: str | None = msgspec.field(default=None, name="deviceId")
    device_name: str | None = msgspec.field(default=None, name="deviceName")


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(_Answer)


def encode_request(request: ProvisionRequest) -> bytes:
    """The request's JSON."""
    return _ENCODER.encode(request)


def decode_answer(payload: bytes, *, device_name: str) -> Issued:
    """The credentials of a SUCCESS answer to the request for `device_name`; CloudError for a
    refusal (NOT_FOUND, FAILURE) or an answer that does not hold together."""
    if len(payload) > MAX_ANSWER_BYTES:
        raise _invalid(f"{len(payload)} bytes, more than any answer ({MAX_ANSWER_BYTES})")
    try:
        answer = _DECODER.decode(payload)
    except msgspec.DecodeError as exc:
        raise _invalid(str(exc)) from exc
    status = answer.status or answer.provision_device_status
    said = f" (server said: {answer.error_msg!r})" if answer.error_msg else ""
    if status == "NOT_FOUND":
        raise CloudError(
            ErrorCode.PROVISION_NOT_FOUND,
            "ThingsBoard does not know this provision key and secret"
            f"{said}: check provision_device_key and provision_device_secret in provision.json "
            "against the device profile's provisioning settings, and that provisioning is "
            "enabled in that profile",
        )
    if status == "FAILURE":
        raise CloudError(
            ErrorCode.PROVISION_FAILURE,
            f"ThingsBoard refused to create device {device_name!r}{said}: a device with this "
            "name probably exists already; delete or rename it in ThingsBoard, or delete "
            "provision.state.json so that the device registers under a new name",
        )
    if status != "SUCCESS":
        raise _invalid(f"status {status!r} is none of SUCCESS, NOT_FOUND, FAILURE")
    kind = answer.credentials_type or ACCESS_TOKEN
    if kind != ACCESS_TOKEN:
        raise _invalid(f"credentials of type {kind!r}, but ACCESS_TOKEN was asked for")
    token = (
        answer.credentials_value if answer.credentials_value is not None else answer.access_token
    )
    if not isinstance(token, str) or not _TOKEN.match(token):
        raise _invalid("no usable access token (a non-empty string without white space)")
    if answer.device_name is not None and answer.device_name != device_name:
        raise _invalid(f"it names device {answer.device_name!r}, not {device_name!r}")
    if answer.device_id is not None and not _is_uuid(answer.device_id):
        raise _invalid("its deviceId is not a UUID")
    return Issued(access_token=token, device_id=answer.device_id)


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _invalid(why: str) -> CloudError:
    return CloudError(ErrorCode.ANSWER_INVALID, f"ThingsBoard's answer is not usable: {why}")
