"""provision.json (seed 001's ProvisioningCredentials): its schema, its validation rules, and
the ThingsBoard server it names."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated
from urllib.parse import urlsplit

import msgspec

DEFAULT_PREFIX = "thermal-camera"
DEFAULT_TIMEOUT_S = 30
TLS_PORT = 8883
"""IANA's secure-mqtt port: a bare host name on it means MQTT over TLS."""
PLAIN_SCHEMES = frozenset({"mqtt", "tcp"})
TLS_SCHEMES = frozenset({"mqtts", "ssl"})
_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")

NonBlank = Annotated[str, msgspec.Meta(min_length=1, pattern=r"\S")]
"""Non-empty and not only white space (msgspec searches the pattern anywhere)."""
# ThingsBoard names hold 255 characters; the name adds "-XXXXXX".
Prefix = Annotated[str, msgspec.Meta(max_length=248, pattern="^[a-z-]+$")]
Port = Annotated[int, msgspec.Meta(ge=1, le=65_535)]


class Server(msgspec.Struct, frozen=True, kw_only=True):
    """Where the ThingsBoard MQTT transport listens."""

    host: str
    port: Port
    use_ssl: bool = False


class ProvisionSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """provision.json. Unknown fields are refused: a misspelt key is a mistake to report."""

    server_url: Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
    """A host name or address (`eu.thingsboard.cloud`), or `mqtt://host` / `mqtts://host`."""
    server_port: Port
    provision_device_key: NonBlank
    provision_device_secret: NonBlank
    device_name_prefix: Prefix | None = None
    """Device names are `<prefix>-XXXXXX`; `thermal-camera` when absent."""
    timeout_seconds: Annotated[int, msgspec.Meta(gt=0)] = DEFAULT_TIMEOUT_S
    """How long each connect and the wait for the answer may take."""

    def __post_init__(self) -> None:
        # Raised here, msgspec reports it as a ValidationError at `$.server_url`-like paths.
        parse_server(self.server_url, self.server_port)

    def __repr__(self) -> str:
        return (
            f"ProvisionSettings(server_url={self.server_url!r}, server_port={self.server_port}, "
            f"device_name_prefix={self.prefix!r}, timeout_seconds={self.timeout_seconds})"
        )

    @property
    def server(self) -> Server:
        """The server named by server_url and server_port."""
        return parse_server(self.server_url, self.server_port)

    @property
    def prefix(self) -> str:
        """The device name prefix in force."""
        return self.device_name_prefix or DEFAULT_PREFIX


def parse_server(url: str, port: int) -> Server:
    """The server at `url` (a host, or `scheme://host[:port]`) and `port`; ValueError says
    what is wrong with it."""
    text = url.strip()
    scheme: str | None = None
    if "://" in text:
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme not in PLAIN_SCHEMES | TLS_SCHEMES:
            known = ", ".join(sorted(PLAIN_SCHEMES | TLS_SCHEMES))
            raise ValueError(f"server_url: scheme {scheme!r} is not one of {known}")
    else:
        parts = urlsplit("//" + text)
    if parts.path not in {"", "/"} or parts.query or parts.fragment or parts.username:
        raise ValueError("server_url must be a host name or scheme://host, nothing more")
    try:
        url_port = parts.port
    except ValueError as exc:
        raise ValueError(f"server_url: {exc}") from exc
    if url_port is not None and url_port != port:
        raise ValueError(f"server_url names port {url_port} but server_port is {port}")
    host = parts.hostname or ""
    if not _valid_host(host):
        raise ValueError(f"server_url: {host!r} is not a host name or IP address")
    use_ssl = scheme in TLS_SCHEMES if scheme is not None else port == TLS_PORT
    return Server(host=host, port=port, use_ssl=use_ssl)


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        labels = host.removesuffix(".").split(".")
        return 0 < len(host) <= 253 and all(_LABEL.match(label) for label in labels)
    return True
