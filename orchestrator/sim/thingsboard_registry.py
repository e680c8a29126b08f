"""ThingsBoard's device registry and its provisioning rules, as the server source runs them
(`JsonConverter` parses the request, `DeviceProvisionServiceImpl` decides, `DeviceServiceImpl`
stores the credentials in one transaction): a request payload in, a response payload out, no I/O.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

import msgspec

GENERATED_LENGTH = 20
"""Generated device names and access tokens: `RandomStringUtils.randomAlphanumeric(20)`."""
_ALPHANUMERIC = string.ascii_letters + string.digits
# Java's String.trim() strips every character up to U+0020, not Unicode whitespace.
_JAVA_TRIM = "".join(map(chr, range(33)))
NOT_FOUND_MESSAGE = "Provision data was not found!"
FAILURE_MESSAGE = "Failed to provision device!"


class ProvisionMode(StrEnum):
    """A device profile's provision strategy (ThingsBoard's `DeviceProfileProvisionType`)."""

    ALLOW_CREATE_NEW_DEVICES = "ALLOW_CREATE_NEW_DEVICES"
    CHECK_PRE_PROVISIONED_DEVICES = "CHECK_PRE_PROVISIONED_DEVICES"
    DISABLED = "DISABLED"


class CredentialsType(StrEnum):
    """Device credential kinds a provision request may ask for."""

    ACCESS_TOKEN = "ACCESS_TOKEN"  # noqa: S105 - a kind of credential, not one
    MQTT_BASIC = "MQTT_BASIC"
    X509_CERTIFICATE = "X509_CERTIFICATE"


class ProvisionStatus(StrEnum):
    """The `status` of a provision response."""

    SUCCESS = "SUCCESS"
    NOT_FOUND = "NOT_FOUND"
    FAILURE = "FAILURE"


def random_alphanumeric() -> str:
    """A fresh 20-character name or token, as ThingsBoard generates them."""
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(GENERATED_LENGTH))


class Credentials(msgspec.Struct, frozen=True, kw_only=True):
    """One device's credentials: an access token, MQTT basic (client id / user name /
    password) or an X.509 public key (the request's `hash`)."""

    type: CredentialsType = CredentialsType.ACCESS_TOKEN
    token: str = ""
    client_id: str = ""
    username: str = ""
    password: str = ""
    certificate: str = ""

    @classmethod
    def access_token(cls, token: str) -> Credentials:
        """ACCESS_TOKEN credentials."""
        return cls(token=token)

    @property
    def identity(self) -> tuple[str, ...]:
        """What must be unique across devices (ThingsBoard's `credentialsId`)."""
        match self.type:
            case CredentialsType.ACCESS_TOKEN:
                return (self.type, self.token)
            case CredentialsType.MQTT_BASIC:
                return (self.type, self.client_id, self.username)
            case CredentialsType.X509_CERTIFICATE:
                return (self.type, self.certificate)

    @property
    def valid(self) -> bool:
        """ThingsBoard's credential validator: no empty token or key, and MQTT basic needs a
        client id or a user name, and no password with a client id alone."""
        match self.type:
            case CredentialsType.ACCESS_TOKEN:
                return bool(self.token)
            case CredentialsType.MQTT_BASIC:
                alone = bool(self.client_id and self.password and not self.username)
                return bool(self.client_id or self.username) and not alone
            case CredentialsType.X509_CERTIFICATE:
                return bool(self.certificate)

    def response_value(self) -> str | dict[str, str]:
        """The response's `credentialsValue` (an object for MQTT basic, note `userName`)."""
        match self.type:
            case CredentialsType.ACCESS_TOKEN:
                return self.token
            case CredentialsType.MQTT_BASIC:
                return {
                    "clientId": self.client_id,
                    "userName": self.username,
                    "password": self.password,
                }
            case CredentialsType.X509_CERTIFICATE:
                return self.certificate

    def __repr__(self) -> str:
        # Tokens, passwords and keys must never reach a log line or a traceback.
        return f"Credentials(type={self.type!r}, client_id={self.client_id!r}, <redacted>)"


class ProvisionProfile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A device profile with provisioning: its key and secret, its mode, and (for
    CHECK_PRE_PROVISIONED_DEVICES) the devices created beforehand, name -> access token
    ("" = generated at start)."""

    key: str
    secret: str
    mode: ProvisionMode = ProvisionMode.ALLOW_CREATE_NEW_DEVICES
    name: str = "default"
    """The profile's name, which ThingsBoard gives new devices as their type."""
    pre_provisioned: dict[str, str] = msgspec.field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"ProvisionProfile(name={self.name!r}, mode={self.mode!r}, key=<redacted>, "
            f"secret=<redacted>, pre_provisioned={sorted(self.pre_provisioned)!r})"
        )


@dataclass(slots=True)
class Device:
    """A device in the registry; `provisioned` is the `provisionState` server attribute."""

    name: str
    credentials: Credentials
    profile: str | None = None
    """The name of the profile it belongs to (None: created outside provisioning)."""
    provisioned: bool = False


class MalformedRequestError(Exception):
    """A request ThingsBoard's JSON adaptor throws on (not a JSON object, a required field
    missing, a field of the wrong kind): it is not answered and the connection closes."""


@dataclass(frozen=True, slots=True)
class ProvisionResult:
    """What one request did: the status, the device it created or found, and the response
    payload as ThingsBoard encodes it."""

    status: ProvisionStatus
    payload: bytes = field(repr=False)
    device: Device | None = None
    created: bool = False


def _string_value(request: Mapping[str, Any], key: str, *, required: bool) -> str:
    """Gson's `getAsString()` on `request[key]`, or "" for a missing optional field."""
    if key not in request:
        if required:
            raise MalformedRequestError(f"field {key} missing")
        return ""
    value = request[key]
    if isinstance(value, list) and len(value) == 1:
        value = value[0]  # Gson reads a one-element array as its element
    match value:
        case bool():
            return "true" if value else "false"
        case str() | int() | float():
            return str(value)
        case _:
            raise MalformedRequestError(f"field {key} is not a JSON primitive")


def _requested(kind: CredentialsType, fields: Mapping[str, str]) -> Credentials:
    """The credentials of `kind` a request carries (only that kind's fields count)."""
    match kind:
        case CredentialsType.ACCESS_TOKEN:
            return Credentials.access_token(fields["token"])
        case CredentialsType.MQTT_BASIC:
            return Credentials(
                type=kind,
                client_id=fields["clientId"],
                username=fields["username"],
                password=fields["password"],
            )
        case CredentialsType.X509_CERTIFICATE:
            return Credentials(type=kind, certificate=fields["hash"])


def _encode(body: dict[str, object]) -> bytes:
    return msgspec.json.encode(body)


class Registry:
    """The devices of one tenant and the provisioning rules over them. Mutated only from the
    event loop's thread, between awaits, so each request is one atomic step."""

    def __init__(
        self,
        profiles: tuple[ProvisionProfile, ...],
        devices: Mapping[str, str] | None = None,
        *,
        repeat_pre_provisioned: bool = True,
        legacy_fields: bool = False,
        new_secret: Callable[[], str] = random_alphanumeric,
    ) -> None:
        if len({p.key for p in profiles}) < len(profiles) or len({p.name for p in profiles}) < len(
            profiles
        ):
            raise ValueError("profile keys and names must be unique")
        self._profiles = {p.key: p for p in profiles if p.mode is not ProvisionMode.DISABLED}
        self._repeat = repeat_pre_provisioned
        self._legacy = legacy_fields
        self._new_secret = new_secret
        self._devices: dict[str, Device] = {}
        self._by_identity: dict[tuple[str, ...], Device] = {}
        for name, token in (devices or {}).items():
            self.add_device(name, Credentials.access_token(token or new_secret()))
        for profile in profiles:
            for name, token in profile.pre_provisioned.items():
                credentials = Credentials.access_token(token or new_secret())
                self.add_device(name, credentials, profile=profile.name)

    @property
    def devices(self) -> Mapping[str, Device]:
        """Every device by name (a live read-only view)."""
        return MappingProxyType(self._devices)

    def add_device(
        self, name: str, credentials: Credentials, *, profile: str | None = None
    ) -> Device:
        """Create a device as an administrator would; ValueError if its name or credentials
        are taken or invalid."""
        if not name or name in self._devices:
            raise ValueError(f"device name {name!r} empty or taken")
        if not credentials.valid or credentials.identity in self._by_identity:
            raise ValueError(f"credentials of {name!r} invalid or taken")
        device = Device(name=name, credentials=credentials, profile=profile)
        self._devices[name] = device
        self._by_identity[credentials.identity] = device
        return device

    def authenticate(
        self, client_id: str, username: str | None, password: str | None
    ) -> Device | None:
        """The device a CONNECT authenticates as, or None (CONNACK 5). A known access token
        as user name wins whatever the password; then MQTT basic by (client id, user name),
        client id alone, user name alone, with the password checked when one is stored."""
        if username and (device := self._by_identity.get((CredentialsType.ACCESS_TOKEN, username))):
            return device
        basic = CredentialsType.MQTT_BASIC
        candidates = []
        if client_id and username:
            candidates.append((basic, client_id, username))
        if client_id:
            candidates.append((basic, client_id, ""))
        if username:
            candidates.append((basic, "", username))
        for identity in candidates:
            if device := self._by_identity.get(identity):
                stored = device.credentials.password
                return device if not stored or stored == password else None
        return None

    def provision(self, payload: bytes) -> ProvisionResult:
        """Run one provision request; MalformedRequestError where ThingsBoard does not answer."""
        try:
            request = msgspec.json.decode(payload)
        except msgspec.DecodeError as exc:
            raise MalformedRequestError("payload is not JSON") from exc
        if not isinstance(request, dict):
            raise MalformedRequestError("payload is not a JSON object")
        name = _string_value(request, "deviceName", required=False)
        kind = _string_value(request, "credentialsType", required=False) or "ACCESS_TOKEN"
        if kind not in CredentialsType.__members__:
            raise MalformedRequestError("unknown credentialsType")
        fields = {
            wire: _string_value(request, wire, required=False)
            for wire in ("token", "clientId", "username", "password", "hash")
        }
        key = _string_value(request, "provisionDeviceKey", required=True)
        secret = _string_value(request, "provisionDeviceSecret", required=True)
        # Any credential field makes ThingsBoard store the requested kind, built from the
        # request; none at all leaves the generated access token every device starts with.
        asked = None
        if any(fields.values()):
            asked = _requested(CredentialsType(kind), fields)
        return self._decide(name, asked, key, secret)

    def _decide(
        self, name: str, asked: Credentials | None, key: str, secret: str
    ) -> ProvisionResult:
        if name:
            name = name.strip(_JAVA_TRIM)
            if not name:
                return self._failure(ProvisionStatus.FAILURE)
        profile = self._profiles.get(key) if key and secret else None
        if profile is None or not secrets.compare_digest(profile.secret, secret):
            return self._failure(ProvisionStatus.NOT_FOUND)
        target = self._devices.get(name)
        if profile.mode is ProvisionMode.ALLOW_CREATE_NEW_DEVICES:
            if target is None:
                return self._create(name or self._new_secret(), asked, profile)
        elif (
            target is not None
            and target.profile == profile.name
            and (self._repeat or not target.provisioned)
        ):
            # Older releases answer a pre-provisioned device again with the same
            # credentials; the current source refuses one whose provisionState is set.
            target.provisioned = True
            return self._success(target, created=False)
        return self._failure(ProvisionStatus.FAILURE)

    def _create(
        self, name: str, asked: Credentials | None, profile: ProvisionProfile
    ) -> ProvisionResult:
        credentials = asked or Credentials.access_token(self._new_secret())
        try:
            device = self.add_device(name, credentials, profile=profile.name)
        except ValueError:
            # The device and its credentials are saved in one transaction: a taken or
            # invalid credential rolls the device back and the answer is FAILURE.
            return self._failure(ProvisionStatus.FAILURE)
        device.provisioned = True
        return self._success(device, created=True)

    def _status_key(self) -> str:
        return "provisionDeviceStatus" if self._legacy else "status"

    def _failure(self, status: ProvisionStatus) -> ProvisionResult:
        message = NOT_FOUND_MESSAGE if status is ProvisionStatus.NOT_FOUND else FAILURE_MESSAGE
        body: dict[str, object] = {"errorMsg": message, self._status_key(): status}
        return ProvisionResult(status=status, payload=_encode(body))

    def _success(self, device: Device, *, created: bool) -> ProvisionResult:
        credentials = device.credentials
        value_key = "credentialsValue"
        if self._legacy and credentials.type is CredentialsType.ACCESS_TOKEN:
            value_key = "accessToken"
        # Gson keeps insertion order: credentialsValue, credentialsType, status.
        body: dict[str, object] = {
            value_key: credentials.response_value(),
            "credentialsType": credentials.type,
            self._status_key(): ProvisionStatus.SUCCESS,
        }
        return ProvisionResult(
            status=ProvisionStatus.SUCCESS, payload=_encode(body), device=device, created=created
        )
