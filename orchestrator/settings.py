"""Settings: composed once from a TOML file, an explicit environment mapping and flags.

Precedence: built-in defaults < TOML file < environment < command-line flags. Environment keys
are `ORCHESTRATOR_<SECTION>__<FIELD>` (for example `ORCHESTRATOR_SERVER__PORT=9000`); a list
setting takes a comma-separated value (`a,b`) or a JSON array (`["a", "b"]`).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import msgspec

from orchestrator.batch.pairing import PairingSettings
from orchestrator.broker.settings import BrokerSettings
from orchestrator.discovery.settings import DiscoverySettings, NetworkSettings
from orchestrator.domain.network import DEFAULT_ONBOARDING_SSID
from orchestrator.network.hostapd import HostapdSettings
from orchestrator.provisioning.engine import EngineSettings
from orchestrator.security.stepup import SecuritySettings

ENV_PREFIX = "ORCHESTRATOR_"
DATABASE_FILE = "orchestrator.sqlite3"
SECRET_KEY_FILE = "secret.key"  # noqa: S105 - a file name, not a secret

Port = Annotated[int, msgspec.Meta(ge=0, le=65_535)]
Positive = Annotated[int, msgspec.Meta(ge=1)]
Origin = Annotated[str, msgspec.Meta(pattern=r"^(\*|https?://[^/\s]+)$")]
"""A browser origin: scheme, host and optional port, no path (`*` matches any part)."""

_COLLECTIONS = (
    msgspec.inspect.ListType,
    msgspec.inspect.SetType,
    msgspec.inspect.FrozenSetType,
    msgspec.inspect.VarTupleType,
)


class ServerSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The HTTP listener."""

    host: str = "127.0.0.1"
    port: Port = 8080
    cors_origins: tuple[Origin, ...] = ()
    """Origins whose pages may call the API from a browser (CORS), such as
    `http://dashboard.local:3000`; empty sends no CORS headers at all."""


class StorageSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where state lives: the SQLite database and the secret key file."""

    data_dir: str = "/var/lib/orchestrator"
    event_log_keep: Positive = 50_000

    @property
    def database_path(self) -> Path:
        """The SQLite database file."""
        return Path(self.data_dir) / DATABASE_FILE

    @property
    def secret_key_path(self) -> Path:
        """The key that seals secrets at rest (created 0600 on first start)."""
        return Path(self.data_dir) / SECRET_KEY_FILE


class BatchSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Batch session rules."""

    onboarding_ssid: str = DEFAULT_ONBOARDING_SSID
    max_retries: Annotated[int, msgspec.Meta(ge=0, le=100)] = 3
    session_ttl_s: Positive | None = None
    """Lifetime of a session from its start; unset means sessions never expire."""


class StreamSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The SSE event stream."""

    heartbeat_s: Annotated[float, msgspec.Meta(gt=0, le=15)] = 15.0
    queue_size: Positive = 1000
    """Frames a subscriber may fall behind before it is disconnected (it then replays)."""
    allow_anonymous: bool = False
    """Open the stream to clients that send no credential (MACs and states, never secrets)."""
    console_session_ttl_s: Positive = 12 * 3600


class LoggingSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Log output."""

    level: str = "INFO"


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything the orchestrator reads from configuration."""

    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    storage: StorageSettings = msgspec.field(default_factory=StorageSettings)
    batch: BatchSettings = msgspec.field(default_factory=BatchSettings)
    streams: StreamSettings = msgspec.field(default_factory=StreamSettings)
    security: SecuritySettings = msgspec.field(default_factory=SecuritySettings)
    pairing: PairingSettings = msgspec.field(default_factory=PairingSettings)
    network: NetworkSettings = msgspec.field(default_factory=NetworkSettings)
    hostapd: HostapdSettings = msgspec.field(default_factory=HostapdSettings)
    discovery: DiscoverySettings = msgspec.field(default_factory=DiscoverySettings)
    engine: EngineSettings = msgspec.field(default_factory=EngineSettings)
    broker: BrokerSettings = msgspec.field(default_factory=BrokerSettings)
    logging: LoggingSettings = msgspec.field(default_factory=LoggingSettings)


class SettingsError(Exception):
    """The configuration is unreadable or invalid; the message says where and why."""


def load_settings(
    config_file: Path | None,
    environ: Mapping[str, str],
    overrides: Mapping[str, Mapping[str, object]] | None = None,
) -> Settings:
    """Compose settings from the layers; `overrides` are the flags, as {section: {field: v}}."""
    layers: list[dict[str, dict[str, Any]]] = []
    if config_file is not None:
        try:
            layers.append(tomllib.loads(config_file.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"cannot read config file {config_file}: {exc}") from exc
    layers.append(_from_environment(environ))
    if overrides:
        layers.append({k: dict(v) for k, v in overrides.items()})
    merged: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for section, values in layer.items():
            if not isinstance(values, dict):
                raise SettingsError(f"[{section}] must be a table")
            merged.setdefault(section, {}).update(values)
    try:
        # strict=False lets environment strings ("9000") convert to the declared types.
        return msgspec.convert(merged, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"invalid configuration: {exc}") from exc


def _from_environment(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    lists = _list_fields()
    layer: dict[str, dict[str, Any]] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or "__" not in key:
            continue
        section, _, field = key.removeprefix(ENV_PREFIX).lower().partition("__")
        is_list = (section, field) in lists
        layer.setdefault(section, {})[field] = _split(key, value) if is_list else value
    return layer


def _split(key: str, value: str) -> list[Any]:
    """A list setting's environment value: a JSON array, or comma-separated (empty: none)."""
    if value.lstrip().startswith("["):
        try:
            return msgspec.json.decode(value, type=list[Any])
        except msgspec.DecodeError as exc:
            raise SettingsError(f"{key} is not a JSON array: {exc}") from exc
    return [item.strip() for item in value.split(",") if item.strip()]


def _list_fields() -> set[tuple[str, str]]:
    """(section, field) of every setting that holds a list, set or tuple (also when optional)."""
    found: set[tuple[str, str]] = set()
    root = msgspec.inspect.type_info(Settings)
    if not isinstance(root, msgspec.inspect.StructType):
        raise TypeError("Settings must be a msgspec Struct")
    for section in root.fields:
        if not isinstance(section.type, msgspec.inspect.StructType):
            continue
        for field in section.type.fields:
            kinds = field.type.types if isinstance(field.type, msgspec.inspect.UnionType) else ()
            if any(isinstance(t, _COLLECTIONS) for t in (field.type, *kinds)):
                found.add((section.name, field.name))
    return found
