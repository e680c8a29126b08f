"""Generate contracts/openapi.json from the code: `python -m orchestrator.api.openapi PATH`.

The document is built from an app whose services are never called, so generating it needs no
database or network.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, cast

from orchestrator import __version__
from orchestrator.api.app import create_app
from orchestrator.api.state import Services
from orchestrator.api.streams import Streams

_GENERIC_NAME = re.compile(r"Success_(?:[A-Za-z_]\w*\.)+(\w+)_")


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of the V1 API, as a JSON-ready dict."""
    # Route construction only inspects handler signatures; the services are never touched.
    app = create_app(cast("Services", None), cast("Streams", None), version=__version__)
    document = json.dumps(app.openapi_schema.to_schema())
    # Generic envelopes get names like "Success_orchestrator.api.schemas.StartData_"; client
    # generators turn those into unreadable type names, so shorten them to "Success_StartData".
    document = _GENERIC_NAME.sub(lambda m: f"Success_{m.group(1)}", document)
    result: dict[str, Any] = json.loads(document)
    return result


def render() -> str:
    """The document as committed: sorted keys, two-space indent, trailing newline."""
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    """Write the document to the path in `argv[1]` (stdout when absent)."""
    text = render()
    if len(argv) > 1:
        Path(argv[1]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
