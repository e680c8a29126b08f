"""The strategies of the device families we ship: ESP32 cameras and Linux thermal cameras.

Both take Wi-Fi and MQTT credentials over the device HTTP API (plain scheme, protected by the
onboarding network's WPA2 key); they differ in what they can accept and what they are told.
"""

from __future__ import annotations

from typing import Final

from orchestrator.domain.attempt import Attempt
from orchestrator.domain.errors import ErrorCode
from orchestrator.protocol import PROTOCOL_VERSION
from orchestrator.protocol.messages import (
    Credentials,
    DeliveryReceipt,
    DeviceInfo,
    DeviceState,
    MqttCredentials,
    SecurityScheme,
)
from orchestrator.protocol.status import Online
from orchestrator.provisioning.errors import StepError, refused
from orchestrator.provisioning.requests import (
    AwaitOnline,
    Deliver,
    Flow,
    GrantAccount,
    RevokeAccount,
    ask,
)
from orchestrator.provisioning.strategy import Issued, Target

READY_STATES: Final = frozenset(
    {DeviceState.UNPROVISIONED, DeviceState.PAIRING, DeviceState.FAILED}
)
"""A device in these states takes new credentials."""

MAX_SSID_BYTES = 32
"""IEEE 802.11: an SSID is at most 32 octets (the contract counts characters)."""


def mac_suffix(mac: str) -> str:
    """The last three octets in lower-case hex: a short name that is unique in practice."""
    return mac.replace(":", "").lower()[-6:]


def check_wpa2(target: Target) -> None:
    """WPA2-PSK takes an 8-63 character ASCII passphrase or 64 hex digits (IEEE 802.11i);
    an empty password means an open network. Anything else would make the device fail its
    join with a misleading auth_error."""
    password = target.password
    if len(target.ssid.encode()) > MAX_SSID_BYTES:
        raise refused("invalid_ssid", f"the SSID is over {MAX_SSID_BYTES} bytes in UTF-8")
    if not password:
        return
    if len(password) == 64 and all(c in "0123456789abcdefABCDEF" for c in password):
        return
    if not (8 <= len(password) <= 63 and password.isascii() and password.isprintable()):
        raise refused(
            "invalid_password",
            "a WPA2 password is 8 to 63 printable ASCII characters (or 64 hex digits)",
        )


class WifiMqttStrategy:
    """The shared flow: grant the device's broker account, deliver Wi-Fi and MQTT credentials,
    wait for its online status with the attempt's nonce, revoke the account on failure."""

    family: str = ""
    name_prefix: str = ""
    takes_cloud: bool = False

    @property
    def name(self) -> str:
        """The family this strategy serves."""
        return self.family

    def detect(self, info: DeviceInfo) -> bool:
        """Our family, our protocol version, and a scheme we can deliver over."""
        return (
            info.family == self.family
            and info.protocol_version == PROTOCOL_VERSION
            and SecurityScheme.PLAIN in info.security_schemes
        )

    def pre_check(self, info: DeviceInfo, target: Target) -> None:
        """The device must be waiting for credentials, and the credentials must fit it."""
        if info.state not in READY_STATES:
            raise StepError(
                ErrorCode.DEVICE_INVALID_STATE,
                "device_busy",
                f"the device says it is {info.state}, not waiting for credentials; "
                "reset it or wait until it comes back",
                retryable=False,
            )
        check_wpa2(target)

    def device_name(self, info: DeviceInfo) -> str:
        """`<prefix>-<last 6 hex digits of the MAC>`."""
        return f"{self.name_prefix}-{mac_suffix(info.mac)}"

    def provision(
        self, info: DeviceInfo, target: Target, issued: Issued, device_name: str
    ) -> Flow[DeliveryReceipt]:
        """Grant the account, then deliver; the receipt must echo the nonce."""
        yield from ask(GrantAccount(account=issued.account), type(None))
        credentials = Credentials(
            target_ssid=target.ssid,
            target_password=target.password,
            mqtt=MqttCredentials(
                broker_url=issued.broker_url,
                username=issued.account.username,
                password=issued.account.password,
                topic_prefix=issued.topic_prefix,
            ),
            device_name=device_name,
            nonce=issued.nonce,
            container_id=issued.container_id,
            cloud=target.cloud if self.takes_cloud else None,
        )
        receipt = yield from ask(Deliver(credentials=credentials), DeliveryReceipt)
        if receipt.nonce != issued.nonce:
            raise StepError(
                ErrorCode.DEVICE_REJECTED,
                "bad_receipt",
                "the device acknowledged other credentials than the ones sent",
                retryable=False,
            )
        return receipt

    def confirm(self, attempt: Attempt) -> Flow[Online]:
        """The online status of this device carrying this attempt's nonce."""
        request = AwaitOnline(
            status_topic=attempt.status_topic, mac=attempt.mac, nonce=attempt.nonce
        )
        return (yield from ask(request, Online))

    def rollback(self, attempt: Attempt) -> Flow[None]:
        """A failed attempt's broker account must not keep working."""
        yield from ask(RevokeAccount(username=attempt.username), type(None))


class Esp32CamStrategy(WifiMqttStrategy):
    """ESP32 cameras (ESP-IDF firmware): Wi-Fi and MQTT only."""

    family = "esp32-cam"
    name_prefix = "esp32cam"


class ThermalCameraStrategy(WifiMqttStrategy):
    """Linux thermal cameras: Wi-Fi and MQTT, plus the cloud registration section when the
    session has one (they register with ThingsBoard themselves on first start)."""

    family = "thermal-camera"
    name_prefix = "thermal"
    takes_cloud = True
