"""The playbook's orchestrator.toml: its role defaults give the built-in defaults, and every
inventory variable of [server], [streams] and [security] lands in a valid configuration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML comes with ansible, without stubs

from orchestrator.security.stepup import SecuritySettings
from orchestrator.settings import Settings, StreamSettings, load_settings

ROOT = Path(__file__).parents[1]
TEMPLATE = ROOT / "deploy" / "orchestrator" / "orchestrator.toml.j2"
VARIABLE_FILES = [
    ROOT / "ansible" / "group_vars" / "all" / "appliance.yml",
    ROOT / "ansible" / "roles" / "orchestrator" / "defaults" / "main.yml",
]


def _ansible_bool(value: object) -> bool:
    """Ansible's `bool` filter: YAML booleans, and the strings an `-e` override gives."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"yes", "on", "1", "true", "y", "t"}


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)  # noqa: S701
    env.filters["to_json"] = json.dumps
    env.filters["bool"] = _ansible_bool
    return env


def _variables(**overrides: Any) -> dict[str, Any]:
    """The role's variables as Ansible would see them on a host with these facts."""
    variables: dict[str, Any] = {
        "ansible_managed": "Ansible managed",
        "playbook_dir": str(ROOT / "ansible"),
        "ansible_facts": {"default_ipv4": {"address": "10.0.0.5"}},
    }
    for path in VARIABLE_FILES:
        variables.update(yaml.safe_load(path.read_text(encoding="utf-8")))
    variables.update(overrides)
    env = _environment()
    # Ansible templates variables lazily; strings referring to others resolve in a few rounds.
    for _ in range(5):
        variables = {
            k: env.from_string(v).render(variables) if isinstance(v, str) else v
            for k, v in variables.items()
        }
    return variables


def _rendered(tmp_path: Path, **overrides: Any) -> Settings:
    text = _environment().from_string(TEMPLATE.read_text(encoding="utf-8"))
    path = tmp_path / "orchestrator.toml"
    path.write_text(text.render(_variables(**overrides)), encoding="utf-8")
    return load_settings(path, {})


def test_the_role_defaults_give_the_built_in_defaults(tmp_path: Path) -> None:
    settings = _rendered(tmp_path)

    assert settings.server.cors_origins == ()
    assert settings.streams == StreamSettings()
    assert settings.security == SecuritySettings()


@pytest.mark.parametrize("allow_anonymous", [True, "yes", "true"])
def test_inventory_variables_reach_the_configuration(
    tmp_path: Path, allow_anonymous: object
) -> None:
    settings = _rendered(
        tmp_path,
        orchestrator_cors_origins=["http://dashboard.local:3000"],
        orchestrator_stream_allow_anonymous=allow_anonymous,
        orchestrator_stream_heartbeat_s=10,
        orchestrator_stream_queue_size=500,
        orchestrator_console_session_ttl_s=3600,
        orchestrator_totp_required_for=["history.clear"],
        orchestrator_step_up_token_ttl_s=300,
        orchestrator_totp_issuer='Line "A" Pi',
        orchestrator_totp_max_failures=3,
        orchestrator_totp_failure_window_s=120,
    )

    assert settings.server.cors_origins == ("http://dashboard.local:3000",)
    assert settings.streams == StreamSettings(
        heartbeat_s=10, queue_size=500, allow_anonymous=True, console_session_ttl_s=3600
    )
    assert {op.value for op in settings.security.totp_required_for} == {"history.clear"}
    assert settings.security.step_up_token_ttl_s == 300
    assert settings.security.totp_issuer == 'Line "A" Pi'
    assert (settings.security.max_failures, settings.security.failure_window_s) == (3, 120)


def test_an_empty_gate_list_turns_step_up_off(tmp_path: Path) -> None:
    settings = _rendered(tmp_path, orchestrator_totp_required_for=[])

    assert settings.security.totp_required_for == frozenset()
