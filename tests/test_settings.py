"""Settings: defaults < TOML file < environment < flags, and loud failures naming the culprit."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator.settings import (
    DATABASE_FILE,
    SECRET_KEY_FILE,
    ServerSettings,
    Settings,
    SettingsError,
    StorageSettings,
    load_settings,
)


def write_config(tmp_path: Path, text: str) -> Path:
    """A TOML config file holding `text`."""
    path = tmp_path / "orchestrator.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_any_layer() -> None:
    settings = load_settings(None, {})

    assert settings == Settings()
    assert settings.server.host == "127.0.0.1"
    assert settings.server.port == 8080
    assert settings.storage.data_dir == "/var/lib/orchestrator"
    assert settings.batch.max_retries == 3
    assert settings.batch.session_ttl_s is None
    assert settings.logging.level == "INFO"


def test_file_layer_sets_values_and_keeps_other_defaults(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        '[server]\nport = 9100\n\n[storage]\ndata_dir = "/srv/orch"\n\n'
        "[batch]\nsession_ttl_s = 600\n",
    )

    settings = load_settings(config, {})

    assert settings.server.port == 9100
    assert settings.server.host == "127.0.0.1"
    assert settings.storage.data_dir == "/srv/orch"
    assert settings.batch.session_ttl_s == 600
    assert settings.logging == Settings().logging


def test_environment_layer_converts_strings_to_declared_types() -> None:
    settings = load_settings(
        None,
        {
            "ORCHESTRATOR_SERVER__PORT": "9000",
            "ORCHESTRATOR_STORAGE__DATA_DIR": "/data",
            "ORCHESTRATOR_BATCH__MAX_RETRIES": "7",
        },
    )

    assert settings.server.port == 9000
    assert isinstance(settings.server.port, int)
    assert settings.storage.data_dir == "/data"
    assert settings.batch.max_retries == 7


@pytest.mark.parametrize(
    "name",
    [
        "PATH",
        "HOME",
        "ORCHESTRATOR_PORT",  # no section separator
        "ORCHESTRATORSERVER__PORT",  # prefix without its underscore
        "OTHER_SERVER__PORT",
        "orchestrator_server__port",  # the prefix is case-sensitive
    ],
)
def test_unrelated_environment_variables_are_ignored(name: str) -> None:
    assert load_settings(None, {name: "not-a-port"}) == Settings()


def test_flags_override_environment_override_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, "[server]\nport = 1111\n")
    environ = {"ORCHESTRATOR_SERVER__PORT": "2222"}

    assert load_settings(config, {}).server.port == 1111
    assert load_settings(config, environ).server.port == 2222
    assert load_settings(config, environ, {"server": {"port": 3333}}).server.port == 3333


def test_layers_merge_field_by_field_within_a_section(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[server]\nhost = "0.0.0.0"\nport = 1111\n')

    settings = load_settings(config, {}, {"server": {"port": 3333}})

    assert settings.server == ServerSettings(host="0.0.0.0", port=3333)  # noqa: S104


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[bogus]\nx = 1\n", "bogus"),
        ("[server]\nprot = 9000\n", "prot"),
        ("[storage]\ndata_dir = '/x'\nsecret = 'y'\n", "secret"),
    ],
)
def test_unknown_section_or_field_in_file_is_refused_by_name(
    tmp_path: Path, text: str, named: str
) -> None:
    config = write_config(tmp_path, text)

    with pytest.raises(SettingsError, match=named):
        load_settings(config, {})


def test_unknown_field_in_environment_is_refused_by_name() -> None:
    with pytest.raises(SettingsError, match="prot"):
        load_settings(None, {"ORCHESTRATOR_SERVER__PROT": "9000"})


def test_section_that_is_not_a_table_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path, "server = 9000\n")

    with pytest.raises(SettingsError, match=r"\[server\] must be a table"):
        load_settings(config, {})


def test_missing_config_file_is_refused_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"

    with pytest.raises(SettingsError, match=re.escape(str(missing))) as caught:
        load_settings(missing, {})

    assert isinstance(caught.value.__cause__, OSError)


def test_directory_as_config_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read config file"):
        load_settings(tmp_path, {})


def test_invalid_toml_is_refused_naming_the_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, "[server\nport = = 1\n")

    with pytest.raises(SettingsError, match=re.escape(str(config))):
        load_settings(config, {})


def test_config_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "orchestrator.toml"
    config.write_bytes(b"\xff\xfe[server]\n")

    with pytest.raises(SettingsError, match=re.escape(str(config))):
        load_settings(config, {})


@pytest.mark.parametrize("port", [-1, 65_536, 70_000])
def test_out_of_range_port_in_file_is_refused(tmp_path: Path, port: int) -> None:
    config = write_config(tmp_path, f"[server]\nport = {port}\n")

    with pytest.raises(SettingsError, match=r"server\.port"):
        load_settings(config, {})


@pytest.mark.parametrize("value", ["65536", "-5", "eighty", ""])
def test_bad_port_from_environment_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match=r"server\.port"):
        load_settings(None, {"ORCHESTRATOR_SERVER__PORT": value})


def test_out_of_range_port_from_flags_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"server\.port"):
        load_settings(None, {}, {"server": {"port": 100_000}})


@pytest.mark.parametrize("port", [0, 65_535])
def test_port_bounds_are_inclusive(port: int) -> None:
    assert load_settings(None, {}, {"server": {"port": port}}).server.port == port


def test_storage_paths_live_in_the_data_dir() -> None:
    storage = StorageSettings(data_dir="/srv/orch")

    assert storage.database_path == Path("/srv/orch") / DATABASE_FILE
    assert storage.secret_key_path == Path("/srv/orch") / SECRET_KEY_FILE
    assert storage.database_path.name == "orchestrator.sqlite3"
    assert storage.secret_key_path.name == "secret.key"


def test_the_documented_example_configuration_loads(tmp_path: Path) -> None:
    """docs/configuration.md's TOML example must stay a valid configuration."""
    doc = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text(encoding="utf-8")
    example = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    config = tmp_path / "orchestrator.toml"
    config.write_text(example, encoding="utf-8")
    settings = load_settings(config, {})
    assert settings == Settings(storage=settings.storage)
    assert settings.storage.data_dir == "/var/lib/orchestrator"


@pytest.mark.parametrize(
    "value",
    [
        "history.clear,session.discard",
        " history.clear , session.discard ",
        '["history.clear", "session.discard"]',
    ],
)
def test_list_settings_from_the_environment_comma_separated_or_json(value: str) -> None:
    settings = load_settings(None, {"ORCHESTRATOR_SECURITY__TOTP_REQUIRED_FOR": value})

    assert {op.value for op in settings.security.totp_required_for} == {
        "history.clear",
        "session.discard",
    }


@pytest.mark.parametrize("value", ["", "[]"])
def test_an_empty_list_setting_from_the_environment_is_empty(value: str) -> None:
    settings = load_settings(None, {"ORCHESTRATOR_SECURITY__TOTP_REQUIRED_FOR": value})

    assert settings.security.totp_required_for == frozenset()


def test_cors_origins_from_the_environment() -> None:
    environ = {"ORCHESTRATOR_SERVER__CORS_ORIGINS": "http://dash.local:3000,https://ops.example"}

    settings = load_settings(None, environ)

    assert settings.server.cors_origins == ("http://dash.local:3000", "https://ops.example")
    assert Settings().server.cors_origins == ()


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"ORCHESTRATOR_SECURITY__TOTP_REQUIRED_FOR": '["history.clear"'}, "JSON array"),
        ({"ORCHESTRATOR_SECURITY__TOTP_REQUIRED_FOR": "history.clear,nope"}, "totp_required_for"),
        ({"ORCHESTRATOR_SERVER__CORS_ORIGINS": "http://dash.local/app"}, "cors_origins"),
    ],
)
def test_bad_list_settings_from_the_environment_are_refused_by_name(
    environ: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(None, environ)
