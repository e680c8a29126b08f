"""The technician console: static assets (HTML, ES modules, CSS) shipped as package data.

Everything the console loads is listed here and served by the appliance itself (no CDN, no web
fonts), so it works on an offline Pi. The console talks to the appliance only through the
public V1 API and its event stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from types import MappingProxyType

import msgspec

_HTML = "text/html"
_JS = "text/javascript"
_CSS = "text/css"


class Asset(msgspec.Struct, frozen=True, kw_only=True):
    """One file of the console and the media type it is served with."""

    file: str
    media_type: str


INDEX = Asset(file="index.html", media_type=_HTML)
"""The console itself, served at `/`."""

ASSETS: Mapping[str, Asset] = MappingProxyType(
    {
        # The claim page a device's pairing QR code opens (orchestrator.domain.pairing.CLAIM_PATH).
        "pair": Asset(file="pair.html", media_type=_HTML),
        "app.css": Asset(file="app.css", media_type=_CSS),
        **{
            name: Asset(file=name, media_type=_JS)
            for name in (
                "allowlist.js",
                "api.js",
                "app.js",
                "batch.js",
                "dialogs.js",
                "dom.js",
                "grid.js",
                "history.js",
                "live.js",
                "pair.js",
                "recovery.js",
                "stepup.js",
                "words.js",
            )
        },
    }
)
"""Everything under `/console/`, by the last segment of its path."""


def read(asset: Asset) -> bytes:
    """The bytes of `asset` (a small file read from the installed package)."""
    return resources.files(__name__).joinpath(asset.file).read_bytes()
