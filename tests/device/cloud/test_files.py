"""The config directory: reading provision.json, and the commit that never corrupts
thermal_config.json (interrupted or failing at every step)."""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any

import pytest

from orchestrator.device.cloud.credentials import DeviceCredentials
from orchestrator.device.cloud.errors import CloudError, ErrorCode
from orchestrator.device.cloud.files import (
    CONFIG,
    KEEP_BACKUPS,
    PROCESSED,
    STATE,
    TRIGGER,
    ConfigDir,
    FileOp,
    Listing,
    Remove,
    Rename,
    WriteFile,
    backup_name,
    commit_plan,
)
from orchestrator.device.cloud.names import pending_for
from orchestrator.device.cloud.settings import ProvisionSettings, Server

NOW = 1_761_229_800
AT = datetime.datetime.fromtimestamp(NOW, datetime.UTC)
CREDS = DeviceCredentials(
    device_name="thermal-camera-ABC123",
    access_token="tok-new",
    server=Server(host="tb.local", port=1883),
)
OLD: dict[str, Any] = {
    "device": {"device_name": "thermal-camera-OLD000", "access_token": "tok-old"},
    "server": {"url": "old.local", "port": 1883},
    "measurement_spots": [{"name": "spot-1", "x": 10, "y": 20}],
}
PROVISION = {
    "server_url": "tb.local",
    "server_port": 1883,
    "provision_device_key": "k",
    "provision_device_secret": "s",
}


class Crash(BaseException):
    """The power went out (not an Exception: nothing may catch and handle it)."""


def listing(**changes: Any) -> Listing:
    fields: dict[str, Any] = {
        "config": b"old",
        "config_mode": 0o644,
        "backups": (),
        "latest_backup": None,
        "triggered": True,
        "has_state": True,
    } | changes
    return Listing(**fields)


def setup_dir(path: Path, *, config: dict[str, Any] | None = OLD, mode: int = 0o640) -> ConfigDir:
    (path / TRIGGER).write_text("")
    (path / "provision.json").write_text(json.dumps(PROVISION))
    if config is not None:
        (path / CONFIG).write_text(json.dumps(config))
        (path / CONFIG).chmod(mode)
    directory = ConfigDir(path)
    directory.save_pending(pending_for(directory.read_settings(), None))
    return directory


def test_the_plan_backs_up_replaces_prunes_retires_and_forgets_in_that_order() -> None:
    plan = commit_plan(listing(backups=(1, 2, 3, 4, 5)), b"new", NOW)
    assert plan == (
        WriteFile(backup_name(NOW), b"old", 0o644),
        WriteFile(CONFIG, b"new", 0o644),
        Remove(backup_name(1)),
        Rename(TRIGGER, PROCESSED),
        Remove(STATE),
    )


def test_a_second_update_in_the_same_second_keeps_both_backups() -> None:
    plan = commit_plan(listing(backups=(NOW,)), b"new", NOW)
    assert plan[0] == WriteFile(backup_name(NOW + 1), b"old", 0o644)


def test_a_fresh_device_has_nothing_to_back_up() -> None:
    plan = commit_plan(listing(config=None, triggered=False, has_state=False), b"new", NOW)
    assert plan == (WriteFile(CONFIG, b"new", 0o644),)


def test_a_backup_an_interrupted_commit_made_is_not_made_twice() -> None:
    plan = commit_plan(listing(backups=(NOW - 5,), latest_backup=b"old"), b"new", NOW)
    assert plan[0] == WriteFile(CONFIG, b"new", 0o644)


def test_an_unchanged_config_is_not_rewritten() -> None:
    assert commit_plan(listing(config=b"same"), b"same", NOW) == (
        Rename(TRIGGER, PROCESSED),
        Remove(STATE),
    )


def test_write_file_repr_shows_no_content() -> None:
    assert "tok" not in repr(WriteFile(CONFIG, b'{"access_token": "tok"}'))


def test_missing_provision_json_is_named(tmp_path: Path) -> None:
    with pytest.raises(CloudError) as caught:
        ConfigDir(tmp_path).read_settings()
    assert caught.value.code is ErrorCode.PROVISION_JSON_MISSING
    assert "provision.json" in caught.value.message


@pytest.mark.parametrize(
    ("content", "where"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "Expected `object`"),
        (json.dumps(PROVISION | {"server_port": 70000}).encode(), "server_port"),
        (
            json.dumps(PROVISION | {"provision_device_secret": ""}).encode(),
            "provision_device_secret",
        ),
    ],
)
def test_malformed_provision_json_says_what_is_wrong(
    tmp_path: Path, content: bytes, where: str
) -> None:
    (tmp_path / "provision.json").write_bytes(content)
    with pytest.raises(CloudError) as caught:
        ConfigDir(tmp_path).read_settings()
    assert caught.value.code is ErrorCode.PROVISION_JSON_INVALID
    assert where in caught.value.message


def test_a_config_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    (tmp_path / CONFIG).write_text("[1, 2")
    with pytest.raises(CloudError) as caught:
        ConfigDir(tmp_path).read_config()
    assert caught.value.code is ErrorCode.CONFIG_INVALID


def test_a_read_only_config_is_refused_even_for_root(tmp_path: Path) -> None:
    (tmp_path / CONFIG).write_text("{}")
    (tmp_path / CONFIG).chmod(0o444)
    with pytest.raises(CloudError) as caught:
        ConfigDir(tmp_path).check_writable()
    assert caught.value.code is ErrorCode.CONFIG_READ_ONLY
    assert "chmod" in caught.value.message


def test_the_commit_stores_credentials_keeps_the_rest_and_tidies_up(tmp_path: Path) -> None:
    directory = setup_dir(tmp_path)
    before = (tmp_path / CONFIG).read_bytes()
    assert directory.commit(CREDS, AT) == ()
    config = json.loads((tmp_path / CONFIG).read_text())
    assert config["measurement_spots"] == OLD["measurement_spots"]
    assert config["device"]["access_token"] == "tok-new"
    assert (tmp_path / backup_name(NOW)).read_bytes() == before
    assert (tmp_path / CONFIG).stat().st_mode & 0o777 == 0o640  # the operator's mode kept
    assert (tmp_path / backup_name(NOW)).stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [CONFIG, backup_name(NOW), PROCESSED, "provision.json"]
    )
    assert directory.stored() == CREDS


def test_only_the_last_five_backups_are_kept(tmp_path: Path) -> None:
    directory = ConfigDir(tmp_path)
    (tmp_path / CONFIG).write_text(json.dumps(OLD))
    for i in range(8):
        creds = DeviceCredentials(device_name=f"n{i}", access_token=f"t{i}", server=CREDS.server)
        directory.commit(creds, datetime.datetime.fromtimestamp(NOW + 10 * i, datetime.UTC))
    assert directory.backups() == [NOW + 10 * i for i in range(3, 8)]
    assert len(directory.backups()) == KEEP_BACKUPS


def test_new_files_holding_secrets_are_private(tmp_path: Path) -> None:
    directory = setup_dir(tmp_path, config=None)
    directory.commit(CREDS, AT)
    assert (tmp_path / CONFIG).stat().st_mode & 0o777 == 0o600


def test_leftover_temp_files_are_cleaned(tmp_path: Path) -> None:
    (tmp_path / f".{CONFIG}.abc123.tmp").write_text("half")
    (tmp_path / f".{STATE}.x.tmp").write_text("half")
    (tmp_path / ".someone-elses.tmp").write_text("keep")
    ConfigDir(tmp_path).clean_temp()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".someone-elses.tmp"]


class FailingDir(ConfigDir):
    """Fails operation number `at` (0-based) with an OSError, or crashes there."""

    def __init__(self, path: Path, at: int, *, crash: bool) -> None:
        super().__init__(path)
        self.at = at
        self.crash = crash
        self.calls = 0
        self.done: list[FileOp] = []

    def apply(self, op: FileOp) -> None:
        self.calls += 1
        if self.calls - 1 == self.at:
            if self.crash:
                raise Crash
            raise CloudError(
                ErrorCode.CONFIG_WRITE_FAILED, f"{op!r} failed: No space left on device"
            )
        super().apply(op)
        self.done.append(op)


def commit_ops(tmp_path: Path) -> list[FileOp]:
    directory = setup_dir(tmp_path)
    spy = FailingDir(tmp_path, at=-1, crash=False)
    spy.commit(CREDS, AT)
    del directory
    return spy.done


def test_the_commit_has_the_steps_the_tests_interrupt(tmp_path: Path) -> None:
    assert [type(op).__name__ for op in commit_ops(tmp_path)] == [
        "WriteFile",
        "WriteFile",
        "Rename",
        "Remove",
    ]


@pytest.mark.parametrize("at", range(4))
def test_a_crash_at_any_step_leaves_the_config_old_or_new_and_a_restart_finishes(
    tmp_path: Path, at: int
) -> None:
    setup_dir(tmp_path)
    before = (tmp_path / CONFIG).read_bytes()
    with pytest.raises(Crash):
        FailingDir(tmp_path, at, crash=True).commit(CREDS, AT)
    config = (tmp_path / CONFIG).read_bytes()
    if at <= 1:
        assert config == before
    else:
        assert json.loads(config)["device"]["access_token"] == "tok-new"
        assert json.loads(config)["measurement_spots"] == OLD["measurement_spots"]
    assert (tmp_path / TRIGGER).exists() == (at <= 2)
    assert (tmp_path / STATE).exists()  # the registration is remembered until the very end
    # The restart commits again: same result as an uninterrupted run, one backup.
    later = datetime.datetime.fromtimestamp(NOW + 60, datetime.UTC)
    ConfigDir(tmp_path).commit(CREDS, later)
    assert ConfigDir(tmp_path).stored() == CREDS
    assert (
        json.loads((tmp_path / CONFIG).read_text())["measurement_spots"] == OLD["measurement_spots"]
    )
    assert not (tmp_path / TRIGGER).exists()
    assert not (tmp_path / STATE).exists()
    backups = ConfigDir(tmp_path).backups()
    assert len(backups) == 1
    assert (tmp_path / backup_name(backups[0])).read_bytes() == before


@pytest.mark.parametrize("at", range(2))
def test_a_failure_before_the_config_is_replaced_leaves_it_exactly_as_it_was(
    tmp_path: Path, at: int
) -> None:
    setup_dir(tmp_path)
    before = (tmp_path / CONFIG).read_bytes()
    with pytest.raises(CloudError) as caught:
        FailingDir(tmp_path, at, crash=False).commit(CREDS, AT)
    assert caught.value.code is ErrorCode.CONFIG_WRITE_FAILED
    assert (tmp_path / CONFIG).read_bytes() == before
    assert ConfigDir(tmp_path).backups() == []  # the backup of an unchanged config is undone
    assert (tmp_path / TRIGGER).exists()


@pytest.mark.parametrize("at", [2, 3])
def test_a_failure_after_the_config_is_replaced_is_a_warning_and_stops_there(
    tmp_path: Path, at: int
) -> None:
    setup_dir(tmp_path)
    warnings = FailingDir(tmp_path, at, crash=False).commit(CREDS, AT)
    assert len(warnings) == 1
    assert "No space left on device" in warnings[0]
    assert ConfigDir(tmp_path).stored() == CREDS
    # The state file outlives provision.txt: the next start recovers, never registers anew.
    assert (tmp_path / STATE).exists()


def test_a_real_os_error_becomes_config_write_failed_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup_dir(tmp_path)
    before = (tmp_path / CONFIG).read_bytes()
    real_replace = os.replace

    def replace(source: Any, target: Any) -> None:
        if Path(target).name == CONFIG:
            raise OSError(28, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(CloudError) as caught:
        ConfigDir(tmp_path).commit(CREDS, AT)
    assert caught.value.code is ErrorCode.CONFIG_WRITE_FAILED
    assert caught.value.message == "writing thermal_config.json failed: No space left on device"
    assert (tmp_path / CONFIG).read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_an_unreadable_state_file_is_ignored(tmp_path: Path) -> None:
    (tmp_path / STATE).write_text("{half")
    assert ConfigDir(tmp_path).read_pending() is None


def test_the_state_file_round_trips(tmp_path: Path) -> None:
    settings = ProvisionSettings(
        server_url="h", server_port=1, provision_device_key="k", provision_device_secret="s"
    )
    pending = pending_for(settings, None)
    directory = ConfigDir(tmp_path)
    directory.save_pending(pending)
    assert directory.read_pending() == pending
    assert (tmp_path / STATE).stat().st_mode & 0o777 == 0o600
