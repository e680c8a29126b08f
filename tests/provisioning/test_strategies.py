"""Strategies and their registry, driven by hand: no event loop, no I/O."""

from __future__ import annotations

import msgspec
import pytest

from orchestrator.domain.errors import ErrorCode
from orchestrator.domain.mac import parse_mac
from orchestrator.ports.broker import DeviceAccount
from orchestrator.protocol.messages import (
    CloudProvisioning,
    DeliveryReceipt,
    DeviceInfo,
    DeviceState,
)
from orchestrator.protocol.status import Online
from orchestrator.provisioning.errors import StepError
from orchestrator.provisioning.families import Esp32CamStrategy, ThermalCameraStrategy
from orchestrator.provisioning.registry import StrategyRegistry
from orchestrator.provisioning.requests import AwaitOnline, Deliver, GrantAccount, RevokeAccount
from orchestrator.provisioning.strategy import Issued, Target
from tests.storage.samples import make_attempt

INFO = DeviceInfo(
    protocol_version=1,
    mac="AA:BB:CC:DD:00:01",
    family="esp32-cam",
    model="esp32-cam-ov2640",
    firmware_version="1.4.2",
    rssi=-50,
    state=DeviceState.UNPROVISIONED,
    security_schemes=["plain"],
)
TARGET = Target(ssid="Factory", password="factory-pass")
ISSUED = Issued(
    mac=parse_mac("AA:BB:CC:DD:00:01"),
    nonce="n" * 24,
    account=DeviceAccount(
        username="dev-aabbccdd0001",
        password="secret-pass",
        client_id="dev-aabbccdd0001",
        status_topic="delicasa/devices/aabbccdd0001/status",
    ),
    broker_url="mqtt://10.42.0.1:1883",
    topic_prefix="delicasa/devices/aabbccdd0001",
)
REGISTRY = StrategyRegistry.default()


def test_the_registry_picks_by_family() -> None:
    assert isinstance(REGISTRY.choose(INFO), Esp32CamStrategy)
    thermal = msgspec.structs.replace(INFO, family="thermal-camera")
    assert isinstance(REGISTRY.choose(thermal), ThermalCameraStrategy)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"family": "toaster"}, "supported: esp32-cam, thermal-camera"),
        ({"protocol_version": 2}, "speaks device protocol v2"),
        ({"security_schemes": ["sec2"]}, "only the security schemes sec2"),
    ],
)
def test_unsupported_devices_are_refused_with_the_reason(
    changes: dict[str, object], words: str
) -> None:
    with pytest.raises(StepError) as caught:
        REGISTRY.choose(msgspec.structs.replace(INFO, **changes))
    assert caught.value.code is ErrorCode.VALIDATION_FAILED
    assert words in caught.value.message


@pytest.mark.parametrize(
    ("password", "ok"),
    [("", True), ("12345678", True), ("x" * 63, True), ("a" * 64, True), ("1234567", False),
     ("x" * 65, False), ("g" * 64, False), ("pässwörd", False)],
)  # fmt: skip
def test_pre_check_knows_what_wpa2_accepts(password: str, ok: bool) -> None:
    target = Target(ssid="Factory", password=password)
    if ok:
        Esp32CamStrategy().pre_check(INFO, target)
    else:
        with pytest.raises(StepError) as caught:
            Esp32CamStrategy().pre_check(INFO, target)
        assert caught.value.reason == "invalid_password"
        assert password not in caught.value.message or not password


def test_pre_check_refuses_a_device_that_holds_credentials() -> None:
    busy = msgspec.structs.replace(INFO, state=DeviceState.PROVISIONED)
    with pytest.raises(StepError) as caught:
        Esp32CamStrategy().pre_check(busy, TARGET)
    assert caught.value.code is ErrorCode.DEVICE_INVALID_STATE


def test_provision_grants_then_delivers_and_checks_the_receipt() -> None:
    strategy = Esp32CamStrategy()
    flow = strategy.provision(INFO, TARGET, ISSUED, strategy.device_name(INFO))
    grant = next(flow)
    assert isinstance(grant, GrantAccount)
    assert grant.account == ISSUED.account
    deliver = flow.send(None)
    assert isinstance(deliver, Deliver)
    sent = deliver.credentials
    assert (sent.target_ssid, sent.nonce, sent.device_name) == (
        "Factory",
        "n" * 24,
        "esp32cam-dd0001",
    )
    assert sent.mqtt.password == "secret-pass"
    assert sent.cloud is None
    assert "secret-pass" not in repr(deliver)
    assert "factory-pass" not in repr(deliver)
    receipt = DeliveryReceipt(protocol_version=1, nonce="n" * 24, state=DeviceState.PROVISIONED)
    with pytest.raises(StopIteration) as done:
        flow.send(receipt)
    assert done.value.value == receipt


def test_a_receipt_for_other_credentials_is_a_rejection() -> None:
    strategy = Esp32CamStrategy()
    flow = strategy.provision(INFO, TARGET, ISSUED, "x")
    next(flow)
    flow.send(None)
    with pytest.raises(StepError) as caught:
        flow.send(DeliveryReceipt(protocol_version=1, nonce="other", state=DeviceState.PROVISIONED))
    assert caught.value.code is ErrorCode.DEVICE_REJECTED


def test_a_wrong_reply_type_is_a_bug_not_a_device_failure() -> None:
    flow = Esp32CamStrategy().provision(INFO, TARGET, ISSUED, "x")
    next(flow)
    with pytest.raises(TypeError):
        flow.send("not None")


def test_thermal_cameras_get_the_cloud_section() -> None:
    cloud = CloudProvisioning(
        provider="thingsboard", host="tb.local", port=1883,
        provision_device_key="k", provision_device_secret="s",
    )  # fmt: skip
    target = Target(ssid="Factory", password="factory-pass", cloud=cloud)
    for strategy, expected in ((ThermalCameraStrategy(), cloud), (Esp32CamStrategy(), None)):
        flow = strategy.provision(INFO, target, ISSUED, "x")
        next(flow)
        deliver = flow.send(None)
        assert isinstance(deliver, Deliver)
        assert deliver.credentials.cloud == expected
    assert "factory-pass" not in repr(target)


def test_confirm_waits_for_this_attempts_nonce_and_rollback_revokes() -> None:
    attempt = make_attempt()
    strategy = Esp32CamStrategy()
    flow = strategy.confirm(attempt)
    wait = next(flow)
    assert wait == AwaitOnline(
        status_topic=attempt.status_topic, mac=attempt.mac, nonce=attempt.nonce
    )
    online = Online(
        nonce=attempt.nonce, mac=attempt.mac, ip="1.2.3.4", firmware_version="1", device_name="d"
    )
    with pytest.raises(StopIteration) as done:
        flow.send(online)
    assert done.value.value == online
    rollback = strategy.rollback(attempt)
    assert next(rollback) == RevokeAccount(username=attempt.username)
