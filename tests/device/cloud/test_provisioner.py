"""Seed 004's acceptance scenarios and edge cases, end to end: a config directory, the
provisioner, and the ThingsBoard stand-in on loopback."""

from __future__ import annotations

import functools
import json
import logging
import os
from pathlib import Path
from typing import Any

import msgspec
import pytest

from orchestrator.context import ContextFilter
from orchestrator.device.cloud import (
    CloudError,
    CloudResult,
    CloudStart,
    ErrorCode,
    ErrorType,
    Outcome,
    ProvisioningState,
    request_provisioning,
    settings_from,
    start_up,
)
from orchestrator.device.cloud.files import ConfigDir, FileOp
from orchestrator.device.cloud.names import NAME_PATTERN, pending_for
from orchestrator.device.cloud.settings import Server
from orchestrator.device.cloud.thingsboard import device_link
from orchestrator.protocol.messages import CloudProvisioning
from orchestrator.protocol.status import CloudReport
from orchestrator.sim.thingsboard import (
    ProvisionFault,
    ProvisionMode,
    ProvisionProfile,
    ThingsBoardSpec,
    ThingsBoardStandIn,
    thingsboard_standin,
)
from tests.device.cloud.conftest import KEY, SECRET, SPEC, SPOTS, Sleeps, prepare, read_config

NOW = 1_761_229_800.0
S = ProvisioningState
HAPPY_STATES = [
    "IDLE -> DETECTING_FILES",
    "DETECTING_FILES -> LOADING_CONFIG",
    "LOADING_CONFIG -> CONNECTING",
    "CONNECTING -> SENDING_REQUEST",
    "SENDING_REQUEST -> WAITING_RESPONSE",
    "WAITING_RESPONSE -> VALIDATING_RESPONSE",
    "VALIDATING_RESPONSE -> UPDATING_CONFIG",
    "UPDATING_CONFIG -> COMPLETED",
]


class Crash(BaseException):
    """The power went out: nothing catches it, nothing after it runs."""


async def provision(directory: Path, sleeps: Sleeps, **options: Any) -> CloudStart:
    return await start_up(directory, sleep=sleeps, clock=lambda: NOW, **options)


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


STORED_NAME, STORED_TOKEN = "thermal-camera-STORED", "stored-token-1"


def stored_config(tb: ThingsBoardStandIn) -> dict[str, Any]:
    return {
        "device": {
            "device_name": STORED_NAME,
            "access_token": STORED_TOKEN,
            "credentials_type": "ACCESS_TOKEN",
        },
        "server": {"url": tb.host, "port": tb.port, "use_ssl": False},
        "measurement_spots": SPOTS,
    }


def assert_failed(
    start: CloudStart,
    state: ProvisioningState,
    code: ErrorCode,
    error_type: ErrorType,
    attempts: int = 1,
) -> None:
    result = start.result
    assert result.outcome is Outcome.FAILED
    assert not result.registered
    assert result.state is state
    assert result.error is not None
    assert (result.error.code, result.error.error_type, result.error.attempts) == (
        code,
        error_type,
        attempts,
    )
    assert result.error.retryable == (error_type is ErrorType.NETWORK)


# --- User story 1: automatic provisioning ------------------------------------------------------


async def test_provision_txt_registers_the_device_and_updates_the_config(
    tmp_path: Path, tb: ThingsBoardStandIn, sleeps: Sleeps
) -> None:
    directory = prepare(tmp_path, tb)
    before = (directory / "thermal_config.json").read_bytes()
    start = await provision(directory, sleeps)
    result = start.result
    assert result.outcome is Outcome.REGISTERED
    assert result.registered
    assert result.state is S.COMPLETED
    assert result.error is None
    assert not result.recovered
    assert not result.warnings
    name = result.device_name
    assert name is not None
    assert NAME_PATTERN.match(name)
    assert name.startswith("thermal-camera-")
    # ThingsBoard has exactly this device, with the token the device chose and stored.
    assert list(tb.devices) == [name]
    config = read_config(directory)
    assert config["device"] == {
        "device_name": name,
        "access_token": tb.devices[name].credentials.token,
        "credentials_type": "ACCESS_TOKEN",
    }
    assert config["server"] == {"url": tb.host, "port": tb.port, "use_ssl": False}
    assert config["measurement_spots"] == SPOTS
    assert config["provisioning"] == {
        "provisioned_at": "2025-10-23T14:30:00Z",
        "provisioned_from": "provision.json",
    }
    assert (directory / f"thermal_config.json.backup.{int(NOW)}").read_bytes() == before
    assert files(directory) == [
        "provision.json",
        "provision.txt.processed",
        "thermal_config.json",
        f"thermal_config.json.backup.{int(NOW)}",
    ]
    assert start.credentials == ConfigDir(directory).stored()
    assert sleeps.calls == []
    # One provision session and one proving CONNECT; no token was ever probed blindly.
    assert (tb.stats.provision_sessions, tb.stats.device_sessions, tb.stats.refused_connects) == (
        1,
        1,
        0,
    )


async def test_a_restart_without_provision_txt_connects_with_the_stored_credentials(
    tmp_path: Path, tb: ThingsBoardStandIn, sleeps: Sleeps
) -> None:
    directory = prepare(tmp_path, tb)
    first = await provision(directory, sleeps)
    again = await provision(directory, sleeps)
    assert again.result.outcome is Outcome.CONNECTED
    assert again.result.registered
    assert again.result.state is S.IDLE
    assert again.result.device_name == first.result.device_name
    assert again.credentials == first.credentials
    assert len(tb.provisions) == 1  # no second registration
    assert tb.stats.device_sessions == 2
    assert again.credentials is not None
    name = again.result.device_name
    async with device_link(again.credentials, timeout_s=1) as link:
        await link.publish_telemetry({"max_temp_c": 41.5})
        await tb.wait_until(lambda: bool(tb.telemetry(name or "")))
    assert tb.telemetry(name or "") == ({"max_temp_c": 41.5},)


async def test_the_orchestrators_delivery_becomes_the_files_that_trigger_provisioning(
    tmp_path: Path, tb: ThingsBoardStandIn, sleeps: Sleeps
) -> None:
    cloud = CloudProvisioning(
        provider="thingsboard",
        host=tb.host,
        port=tb.port,
        provision_device_key=KEY,
        provision_device_secret=SECRET,
        device_name_prefix="lab-cam",
    )
    await request_provisioning(tmp_path / "config", cloud, timeout_seconds=1)
    tmp_path /= "config"
    assert files(tmp_path) == ["provision.json", "provision.txt"]
    assert json.loads((tmp_path / "provision.json").read_text()) == {
        "server_url": tb.host,
        "server_port": tb.port,
        "provision_device_key": KEY,
        "provision_device_secret": SECRET,
        "device_name_prefix": "lab-cam",
        "timeout_seconds": 1,
    }
    assert (tmp_path / "provision.json").stat().st_mode & 0o777 == 0o600
    start = await provision(tmp_path, sleeps)
    assert start.result.outcome is Outcome.REGISTERED
    assert (start.result.device_name or "").startswith("lab-cam-")
    assert read_config(tmp_path)["device"]["device_name"] == start.result.device_name
    assert start.result.report() == CloudReport(
        registered=True, device_name=start.result.device_name
    )


def test_a_delivery_names_the_server_and_prefix_of_provision_json() -> None:
    cloud = CloudProvisioning(
        provider="thingsboard",
        host="fd00::5",
        port=8883,
        provision_device_key=KEY,
        provision_device_secret=SECRET,
    )
    settings = settings_from(cloud, timeout_seconds=5)
    assert settings.server == Server(host="fd00::5", port=8883, use_ssl=True)
    assert settings.prefix == "thermal-camera"
    assert settings.timeout_seconds == 5


async def test_deliveries_that_cannot_be_provisioned_are_refused(tmp_path: Path) -> None:
    cloud = CloudProvisioning(
        provider="aws-iot",
        host="h",
        port=1883,
        provision_device_key="k",
        provision_device_secret="s",
    )
    with pytest.raises(CloudError) as caught:
        await request_provisioning(tmp_path, cloud)
    assert caught.value.code is ErrorCode.UNSUPPORTED_PROVIDER
    blank = msgspec.structs.replace(cloud, provider="thingsboard", provision_device_secret=" ")
    with pytest.raises(CloudError) as caught:
        await request_provisioning(tmp_path, blank)
    assert caught.value.code is ErrorCode.PROVISION_JSON_INVALID
    assert files(tmp_path) == []


async def test_a_simulated_networks_routing_reaches_the_named_server(
    tmp_path: Path, tb: ThingsBoardStandIn, sleeps: Sleeps
) -> None:
    directory = prepare(tmp_path, tb, server_url="tb.factory.invalid")
    start = await provision(directory, sleeps, address=(tb.host, tb.port))
    assert start.result.outcome is Outcome.REGISTERED
    assert read_config(directory)["server"]["url"] == "tb.factory.invalid"


async def test_a_pre_provisioned_device_stores_the_servers_token(
    tmp_path: Path, sleeps: Sleeps
) -> None:
    name = "thermal-camera-PRE001"
    profile = ProvisionProfile(
        key=KEY,
        secret=SECRET,
        mode=ProvisionMode.CHECK_PRE_PROVISIONED_DEVICES,
        pre_provisioned={name: "made-by-the-admin"},
    )
    async with thingsboard_standin(ThingsBoardSpec(profiles=(profile,))) as tb:
        directory = prepare(tmp_path, tb)
        config_dir = ConfigDir(directory)
        chosen = msgspec.structs.replace(
            pending_for(config_dir.read_settings(), None), device_name=name
        )
        config_dir.save_pending(chosen)
        start = await provision(directory, sleeps)
    assert start.result.outcome is Outcome.REGISTERED
    assert read_config(directory)["device"]["access_token"] == "made-by-the-admin"


async def test_answers_with_the_old_field_names_register_too(
    tmp_path: Path, sleeps: Sleeps
) -> None:
    spec = msgspec.structs.replace(SPEC, legacy_response_fields=True)
    async with thingsboard_standin(spec) as tb:
        start = await provision(prepare(tmp_path, tb), sleeps)
    assert start.result.outcome is Outcome.REGISTERED


# --- User story 2: error handling ----------------------------------------------------------------


async def test_invalid_credentials_fail_at_once_and_leave_the_config_alone(
    tmp_path: Path, tb: ThingsBoardStandIn, sleeps: Sleeps
) -> None:
    directory = prepare(
        tmp_path, tb, config=stored_config(tb), provision_device_secret="wrong-secret"
    )
    before = (directory / "thermal_config.json").read_bytes()
    start = await provision(directory, sleeps)
    assert_failed(start, S.FAILED_VALIDATION, ErrorCode.PROVISION_NOT_FOUND, ErrorType.AUTH)
    assert start.result.error is not None
    assert "provision_device_secret in provision.json" in start.result.error.message
    report = start.result.report()
    assert not report.registered
    assert report.error is not None
    assert report.error.endswith("(AUTH, provision_not_found)")
    assert sleeps.calls == []  # NOT_FOUND is never retried
    assert len(tb.provisions) == 1
    assert not tb.devices
    assert (directory / "thermal_config.json").read_bytes() == before
    assert (directory / "provision.txt").exists()
    # The existing configuration stays in use.
    assert start.result.fallback
    assert start.credentials is not None
    assert start.credentials.device_name == STORED_NAME


async def test_a_name_already_taken_fails_at_once_naming_the_device(
    tmp_path: Path, tb: ThingsBoardStandIn, sleeps: Sleeps
) -> None:
    directory = prepare(tmp_path, tb)
    config_dir = ConfigDir(directory)
    pending = pending_for(config_dir.read_settings(), None)
    config_dir.save_pending(pending)  # the name this device will ask for...
    tb.add_device(pending.device_name, "someone-elses-token")  # ...is taken already
    before = (directory / "thermal_config.json").read_bytes()
    start = await provision(directory, sleeps)
    assert_failed(start, S.FAILED_VALIDATION, ErrorCode.PROVISION_FAILURE, ErrorType.SERVER)
    assert start.result.error is not None
    assert pending.device_name in start.result.error.message
    assert sleeps.calls == []
    assert tb.devices[pending.device_name].credentials.token == "someone-elses-token"
    assert (directory / "thermal_config.json").read_bytes() == before
    assert not start.result.fallback
    assert start.credentials is None


async def test_network_failures_are_retried_after_1_2_and_4_seconds_then_reported(
    tmp_path: Path, tb: ThingsBoardStandIn, sleeps: Sleeps
) -> None:
    directory = prepare(tmp_path, tb)
    before = (directory / "thermal_config.json").read_bytes()
    await tb.refuse_connections()
    start = await provision(directory, sleeps)
    assert_failed(
        start, S.FAILED_CONNECTION, ErrorCode.SERVER_UNREACHABLE, ErrorType.NETWORK, attempts=4
    )
    assert sleeps.calls == [1.0, 2.0, 4.0]
    assert (directory / "thermal_config.json").read_bytes() == before
    assert (directory / "provision.txt").exists()


async def test_the_server_coming_back_during_the_retries_completes_the_registration(
    tmp_path: Path, tb: ThingsBoardStandIn, sleeps: Sleeps
) -> None:
    directory = prepare(tmp_path, tb)
    await tb.refuse_connections()
    sleeps.hooks[2] = tb.accept_connections
    start = await provision(directory, sleeps)
    assert start.result.outcome is Outcome.REGISTERED
    assert sleeps.calls == [1.0, 2.0]
    assert len(tb.devices) == 1


async def test_a_lost_answer_is_recovered_without_a_second_device(
    tmp_path: Path, tb: ThingsBoardStandIn, sleeps: Sleeps
) -> None:
    tb.inject_provision_fault(ProvisionFault.LOSE_ANSWER)
    start = await provision(prepare(tmp_path, tb), sleeps)
    assert start.result.outcome is Outcome.REGISTERED
    assert start.result.recovered
    assert sleeps.calls == [1.0]
    assert len(tb.provisions) == 1
    assert len(tb.devices) == 1
    assert (
        read_config(tmp_path)["device"]["access_token"]
        == tb.devices[start.result.device_name or ""].credentials.token
    )


async def test_a_lost_answer_is_recovered_after_a_restart_too(
    tmp_path: Path, tb: ThingsBoardStandIn, sleeps: Sleeps
) -> None:
    directory = prepare(tmp_path, tb)
    tb.inject_provision_fault(ProvisionFault.LOSE_ANSWER)
    sleeps.hooks[1] = tb.refuse_connections  # and then the server is gone for a while
    first = await provision(directory, sleeps)
    assert_failed(
        first, S.FAILED_CONNECTION, ErrorCode.SERVER_UNREACHABLE, ErrorType.NETWORK, attempts=4
    )
    assert len(tb.devices) == 1  # created, but the device does not know it yet
    await tb.accept_connections()
    second = await provision(directory, Sleeps())
    assert second.result.outcome is Outcome.REGISTERED
    assert second.result.recovered
    assert second.result.device_name == first.result.device_name
    assert len(tb.provisions) == 1
    assert len(tb.devices) == 1


async def test_a_request_lost_on_the_way_in_is_sent_again(
    tmp_path: Path, tb: ThingsBoardStandIn, sleeps: Sleeps
) -> None:
    tb.inject_provision_fault(ProvisionFault.DROP_REQUEST)
    start = await provision(prepare(tmp_path, tb), sleeps)
    assert start.result.outcome is Outcome.REGISTERED
    assert not start.result.recovered
    assert len(tb.provisions) == 2
    assert len(tb.devices) == 1
    assert tb.stats.refused_connects == 1  # the one check that found no device


async def test_a_connection_closed_instead_of_answering_is_recovered(
    tmp_path: Path, tb: ThingsBoardStandIn, sleeps: Sleeps
) -> None:
    tb.inject_provision_fault(ProvisionFault.CLOSE_INSTEAD)
    start = await provision(prepare(tmp_path, tb), sleeps)
    assert start.result.outcome is Outcome.REGISTERED
    assert start.result.recovered
    assert len(tb.devices) == 1


# --- Edge cases ----------------------------------------------------------------------------------


async def test_provision_txt_without_provision_json_keeps_the_existing_configuration(
    tmp_path: Path, tb: ThingsBoardStandIn, sleeps: Sleeps
) -> None:
    directory = prepare(tmp_path, tb, config=stored_config(tb))
    (directory / "provision.json").unlink()
    start = await provision(directory, sleeps)
    assert_failed(start, S.FAILED_CONFIG, ErrorCode.PROVISION_JSON_MISSING, ErrorType.VALIDATION)
    assert start.result.fallback
    assert start.credentials is not None
    assert tb.stats.connections == 0
    assert read_config(directory) == stored_config(tb)


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ('{"server_url": ', "not valid JSON"),
        ('"a string"', "object"),
        ({"server_port": 0}, "server_port"),
        ({"provision_device_key": ""}, "provision_device_key"),
        ({"device_name_prefix": "Thermal_Cam"}, "device_name_prefix"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"server_url": "ftp://tb.local"}, "scheme"),
    ],
)
async def test_a_malformed_provision_json_is_reported_and_the_existing_configuration_kept(
    tmp_path: Path,
    tb: ThingsBoardStandIn,
    sleeps: Sleeps,
    content: str | dict[str, Any],
    named: str,
) -> None:
    directory = prepare(tmp_path, tb, config=stored_config(tb))
    text = (
        content
        if isinstance(content, str)
        else json.dumps(json.loads((directory / "provision.json").read_text()) | content)
    )
    (directory / "provision.json").write_text(text)
    start = await provision(directory, sleeps)
    assert_failed(start, S.FAILED_CONFIG, ErrorCode.PROVISION_JSON_INVALID, ErrorType.VALIDATION)
    assert start.result.error is not None
    assert named in start.result.error.message
    assert start.result.fallback
    assert tb.stats.connections == 0
    assert read_config(directory) == stored_config(tb)


async def test_a_read_only_config_fails_before_anything_is_registered(
    tmp_path: Path, tb: ThingsBoardStandIn, sleeps: Sleeps
) -> None:
    directory = prepare(tmp_path, tb)
    target = directory / "thermal_config.json"
    before = target.read_bytes()
    target.chmod(0o444)
    start = await provision(directory, sleeps)
    assert_failed(start, S.FAILED_UPDATE, ErrorCode.CONFIG_READ_ONLY, ErrorType.VALIDATION)
    assert tb.stats.connections == 0
    assert not tb.devices
    assert target.read_bytes() == before
    assert target.stat().st_mode & 0o777 == 0o444
    assert (directory / "provision.txt").exists()


async def test_a_config_that_is_not_json_is_not_overwritten(
    tmp_path: Path, tb: ThingsBoardStandIn, sleeps: Sleeps
) -> None:
    directory = prepare(tmp_path, tb)
    (directory / "thermal_config.json").write_text('{"measurement_spots": [')
    start = await provision(directory, sleeps)
    assert_failed(start, S.FAILED_CONFIG, ErrorCode.CONFIG_INVALID, ErrorType.VALIDATION)
    assert (directory / "thermal_config.json").read_text() == '{"measurement_spots": ['
    assert tb.stats.connections == 0


async def test_a_failed_update_leaves_the_config_exactly_and_the_next_start_recovers(
    tmp_path: Path, tb: ThingsBoardStandIn, sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Device created, credentials not stored (the partial failure of seed 004)."""
    directory = prepare(tmp_path, tb)
    before = (directory / "thermal_config.json").read_bytes()
    real_replace = os.replace

    def full_disk(source: Any, target: Any) -> None:
        if Path(target).name == "thermal_config.json":
            raise OSError(28, "No space left on device")
        real_replace(source, target)

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", full_disk)
        first = await provision(directory, sleeps)
    assert_failed(first, S.FAILED_UPDATE, ErrorCode.CONFIG_WRITE_FAILED, ErrorType.VALIDATION)
    assert (directory / "thermal_config.json").read_bytes() == before
    assert ConfigDir(directory).backups() == []
    assert len(tb.devices) == 1
    second = await provision(directory, sleeps)
    assert second.result.outcome is Outcome.REGISTERED
    assert second.result.recovered
    assert second.result.device_name == first.result.device_name
    assert len(tb.provisions) == 1
    assert len(tb.devices) == 1
    assert read_config(directory)["measurement_spots"] == SPOTS


SAVE_STATE, BACKUP, REPLACE_CONFIG, RETIRE_TRIGGER, FORGET_STATE = range(5)


@pytest.mark.parametrize(
    "crash_at",
    ["waiting for the answer", SAVE_STATE, BACKUP, REPLACE_CONFIG, RETIRE_TRIGGER, FORGET_STATE],
)
async def test_an_interruption_at_any_step_never_corrupts_the_config_and_the_restart_finishes(
    tmp_path: Path,
    tb: ThingsBoardStandIn,
    sleeps: Sleeps,
    monkeypatch: pytest.MonkeyPatch,
    crash_at: int | str,
) -> None:
    directory = prepare(tmp_path, tb)
    before = (directory / "thermal_config.json").read_bytes()
    real_apply = ConfigDir.apply
    writes: list[FileOp] = []

    def apply(self: ConfigDir, op: FileOp) -> None:
        if len(writes) == crash_at:
            raise Crash
        real_apply(self, op)
        writes.append(op)

    async def crash() -> None:
        raise Crash

    if crash_at == "waiting for the answer":
        tb.inject_provision_fault(ProvisionFault.LOSE_ANSWER)
        sleeps.hooks[1] = crash
    with monkeypatch.context() as patch:
        patch.setattr(ConfigDir, "apply", apply)
        with pytest.raises(Crash):
            await provision(directory, sleeps)
    config = (directory / "thermal_config.json").read_bytes()
    if config != before:
        assert json.loads(config)["measurement_spots"] == SPOTS
        assert json.loads(config)["device"]["access_token"] in {
            d.credentials.token for d in tb.devices.values()
        }
    restart = await provision(directory, Sleeps())
    assert restart.result.outcome in {Outcome.REGISTERED, Outcome.CONNECTED}
    assert len(tb.devices) == 1
    assert len(tb.provisions) == 1
    (name,) = tb.devices
    assert read_config(directory)["device"]["access_token"] == tb.devices[name].credentials.token
    assert read_config(directory)["measurement_spots"] == SPOTS
    assert not (directory / "provision.txt").exists()
    assert not (directory / "provision.state.json").exists()
    assert not [f for f in files(directory) if f.endswith(".tmp")]
    backups = ConfigDir(directory).backups()
    assert len(backups) == 1
    assert (directory / f"thermal_config.json.backup.{backups[0]}").read_bytes() == before


async def test_repeated_provisioning_keeps_the_last_five_backups(
    tmp_path: Path, tb: ThingsBoardStandIn, sleeps: Sleeps
) -> None:
    directory = prepare(tmp_path, tb)
    for run in range(7):
        (directory / "provision.txt").write_text("")
        start = await start_up(
            directory, sleep=sleeps, clock=functools.partial(float, NOW + 60 * run)
        )
        assert start.result.outcome is Outcome.REGISTERED
    assert ConfigDir(directory).backups() == [int(NOW) + 60 * run for run in range(2, 7)]
    assert len(tb.devices) == 7
    assert read_config(directory)["measurement_spots"] == SPOTS


async def test_no_provision_txt_and_no_credentials_says_so(tmp_path: Path, sleeps: Sleeps) -> None:
    start = await provision(tmp_path, sleeps)
    assert start.result.outcome is Outcome.FAILED
    assert start.result.state is S.IDLE
    assert start.result.error is not None
    assert start.result.error.code is ErrorCode.NOT_PROVISIONED
    assert start.credentials is None


async def test_stored_credentials_the_server_refuses_say_provision_again(
    tmp_path: Path, tb: ThingsBoardStandIn, sleeps: Sleeps
) -> None:
    (tmp_path / "thermal_config.json").write_text(json.dumps(stored_config(tb)))
    start = await provision(tmp_path, sleeps)
    assert start.result.error is not None
    assert (start.result.error.code, start.result.error.error_type) == (
        ErrorCode.STORED_TOKEN_REFUSED,
        ErrorType.AUTH,
    )
    assert sleeps.calls == []
    assert start.credentials is not None  # still what the device has


async def test_stored_credentials_on_an_unreachable_server_are_retried(
    tmp_path: Path, tb: ThingsBoardStandIn, sleeps: Sleeps
) -> None:
    tb.add_device(STORED_NAME, STORED_TOKEN)
    (tmp_path / "thermal_config.json").write_text(json.dumps(stored_config(tb)))
    await tb.refuse_connections()
    sleeps.hooks[3] = tb.accept_connections
    start = await provision(tmp_path, sleeps)
    assert start.result.outcome is Outcome.CONNECTED
    assert sleeps.calls == [1.0, 2.0, 4.0]


# --- User story 3: monitoring, and secrets -------------------------------------------------------


async def test_every_state_is_logged_under_one_correlation_id_per_attempt(
    tmp_path: Path, tb: ThingsBoardStandIn, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.handler.addFilter(ContextFilter())
    caplog.set_level(logging.INFO, logger="orchestrator.device.cloud")
    first = await provision(prepare(tmp_path / "a", tb), sleeps)
    second = await provision(prepare(tmp_path / "b", tb), sleeps)
    ids = {first.result.correlation_id, second.result.correlation_id}
    assert len(ids) == 2
    for start in (first, second):
        cid = start.result.correlation_id
        lines = [
            r.getMessage() for r in caplog.records if getattr(r, "correlation_id", None) == cid
        ]
        moves = [line.removeprefix("provisioning ") for line in lines if " -> " in line]
        assert moves == HAPPY_STATES
        assert any(
            f"completed: registered as {start.result.device_name!r}" in line for line in lines
        )
    assert {
        getattr(r, "correlation_id", None)
        for r in caplog.records
        if r.name.startswith("orchestrator.device.cloud")
    } == ids


async def test_failures_are_logged_with_their_state_type_and_code(
    tmp_path: Path, tb: ThingsBoardStandIn, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    await tb.refuse_connections()
    await provision(prepare(tmp_path, tb), sleeps)
    errors = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.ERROR and r.name.endswith("provisioner")
    ]
    assert len(errors) == 1
    assert "ended FAILED_CONNECTION (NETWORK, server_unreachable)" in errors[0]
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert [line.rsplit("; ", 1)[1] for line in retries] == [
        "retry 1 of 3 in 1 s",
        "retry 2 of 3 in 2 s",
        "retry 3 of 3 in 4 s",
    ]


async def test_no_key_secret_or_token_reaches_a_log_line_or_the_result(
    tmp_path: Path, tb: ThingsBoardStandIn, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tb.inject_provision_fault(ProvisionFault.LOSE_ANSWER)
    good = await provision(prepare(tmp_path / "good", tb), sleeps)
    bad = await provision(
        prepare(tmp_path / "bad", tb, provision_device_secret="wrong-secret-xyz"), sleeps
    )
    tokens = [d.credentials.token for d in tb.devices.values()]
    assert tokens
    secrets = [KEY, SECRET, "wrong-secret-xyz", *tokens]
    text = "\n".join(r.getMessage() for r in caplog.records)
    text += repr(good) + repr(bad) + str(good.credentials)
    text += msgspec.json.encode(good.result).decode() + msgspec.json.encode(bad.result).decode()
    for secret in secrets:
        assert secret not in text


def test_the_result_travels_as_json() -> None:
    result = CloudResult(
        outcome=Outcome.REGISTERED, state=S.COMPLETED, correlation_id="abc", device_name="n"
    )
    encoded = msgspec.json.encode(result)
    assert msgspec.json.decode(encoded) == {
        "outcome": "registered",
        "state": "COMPLETED",
        "correlation_id": "abc",
        "device_name": "n",
    }
    assert msgspec.json.decode(encoded, type=CloudResult) == result
