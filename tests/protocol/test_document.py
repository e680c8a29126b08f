"""contracts/device-protocol.md and the schemas: generated from the code, complete, stable.

(That the committed files equal a fresh generation is tests/api/test_openapi.py's business:
it checks every entry of CONTRACTS.)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.contracts import CONTRACTS
from orchestrator.protocol.advert import SERVICE_TYPE, txt_record
from orchestrator.protocol.document import (
    DOCUMENT,
    EXAMPLE_FAILED,
    SCHEMA_DIR,
    message_types,
    render_document,
    render_schema,
    schema_file,
)
from orchestrator.protocol.messages import (
    ENDPOINTS,
    ERROR_STATUS,
    DeviceErrorCode,
    DeviceState,
    FailureReason,
    SecurityScheme,
)
from orchestrator.protocol.status import status_topic

CONTRACTS_DIR = Path(__file__).parents[2] / "contracts"
DOC = (CONTRACTS_DIR / DOCUMENT).read_text(encoding="utf-8")


def test_every_endpoint_is_in_the_api_table() -> None:
    for endpoint in ENDPOINTS:
        row = f"| `{endpoint.method}` | `{endpoint.path}` |"
        assert row in DOC, f"{endpoint.method} {endpoint.path} is not documented"


@pytest.mark.parametrize("code", list(DeviceErrorCode))
def test_every_error_code_is_documented_with_its_status(code: DeviceErrorCode) -> None:
    assert f"| `{code.value}` | {ERROR_STATUS[code]} |" in DOC


@pytest.mark.parametrize(
    "value", [*DeviceState, *FailureReason, *SecurityScheme], ids=lambda v: v.value
)
def test_every_state_reason_and_scheme_is_documented(
    value: DeviceState | FailureReason | SecurityScheme,
) -> None:
    assert f"| `{value.value}` |" in DOC


def test_every_txt_key_and_the_mqtt_rules_are_documented() -> None:
    for key in txt_record(EXAMPLE_FAILED):
        assert f"| `{key}` |" in DOC
    assert SERVICE_TYPE in DOC
    assert f"`{status_topic('<topic_prefix>')}` | 1 | yes |" in DOC
    assert "DelicasaOnboard" in DOC


def test_every_message_has_a_registered_schema_and_nothing_stale_is_left() -> None:
    registered = {name for name in CONTRACTS if name.startswith(f"{SCHEMA_DIR}/")}
    assert registered == {schema_file(name) for name in message_types()}
    on_disk = {f"{SCHEMA_DIR}/{p.name}" for p in (CONTRACTS_DIR / SCHEMA_DIR).iterdir()}
    assert on_disk == registered
    assert DOCUMENT in CONTRACTS


def test_every_link_inside_the_document_has_a_target() -> None:
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", DOC, flags=re.MULTILINE)
    }
    for target in re.findall(r"\]\(#([^)]+)\)", DOC):
        assert target in anchors, f"#{target} leads nowhere"
    for path in re.findall(r"\]\(([^)#]+)\)", DOC):
        assert (CONTRACTS_DIR / path).exists(), path


def test_schemas_carry_field_docstrings_and_a_dialect() -> None:
    schema = json.loads(render_schema("DeviceInfo"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    rssi = schema["$defs"]["DeviceInfo"]["properties"]["rssi"]
    assert "dBm" in rssi["description"]
    attempts = schema["$defs"]["LastFailure"]["properties"]["attempts"]
    assert attempts["description"].startswith("Join attempts")
    # Forward compatibility: a schema never forbids fields a newer peer may add.
    assert "additionalProperties" not in json.dumps(schema)


def test_rendering_does_not_depend_on_the_hash_seed() -> None:
    script = (
        "import sys\n"
        "from orchestrator.protocol.document import contract_files\n"
        "for name, render in contract_files().items():\n"
        "    sys.stdout.write(name + '\\n' + render())\n"
    )
    outputs = set()
    for seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(  # noqa: S603 - our own interpreter and code
            [sys.executable, "-c", script], env=env, capture_output=True, check=True, timeout=60
        )
        outputs.add(result.stdout)
    assert len(outputs) == 1
    assert render_document() in outputs.pop().decode()
