"""The machine-readable contracts in contracts/, generated from the code.

`python -m orchestrator.contracts DIR` writes them all; a test fails when a committed file
differs from a fresh generation.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from orchestrator.api.openapi import render as render_openapi
from orchestrator.protocol.document import contract_files as device_protocol_files
from orchestrator.settings import Settings
from orchestrator.typescript import render as render_typescript


def render_settings_schema() -> str:
    """JSON Schema of the TOML configuration (every section, field, default and bound)."""
    schema = _sorted_set_defaults(msgspec.json.schema(Settings))
    schema["title"] = "orchestrator configuration (TOML)"
    schema["description"] = (
        "Layers: defaults < --config TOML file < ORCHESTRATOR_<SECTION>__<FIELD> environment "
        "variables < command-line flags."
    )
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def _sorted_set_defaults(node: Any) -> Any:
    """Sort list defaults that come from sets: their order follows string hashing, which
    changes from run to run, and the committed file must not."""
    if isinstance(node, dict):
        return {
            key: sorted(value)
            if key == "default"
            and isinstance(value, list)
            and all(isinstance(v, str) for v in value)
            else _sorted_set_defaults(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_sorted_set_defaults(item) for item in node]
    return node


CONTRACTS: dict[str, Callable[[], str]] = {
    "openapi.json": render_openapi,
    "settings.schema.json": render_settings_schema,
    "v1-api.ts": render_typescript,
    **device_protocol_files(),
}
"""File names under contracts/ (nested paths allowed) and the functions rendering them."""


def main(argv: list[str]) -> int:
    """Write every contract into the directory named by `argv[1]`."""
    if len(argv) != 2:
        print("usage: python -m orchestrator.contracts DIR", file=sys.stderr)
        return 2
    directory = Path(argv[1])
    for name, render in CONTRACTS.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
