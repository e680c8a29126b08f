"""docs/api.md agrees with contracts/openapi.json and with the code's registries: every
endpoint, every error code (with its status and retryability), every event type and every
step-up gate is documented, and nothing documented is missing from them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import cast

import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute

from orchestrator.api.app import create_app
from orchestrator.api.state import Services
from orchestrator.api.streams import Streams
from orchestrator.domain.errors import ERROR_SPECS, ErrorCode
from orchestrator.domain.events import EventType
from orchestrator.domain.totp import GatedOperation

REPO = Path(__file__).resolve().parents[2]
API_DOC = REPO / "docs" / "api.md"
OPENAPI = REPO / "contracts" / "openapi.json"
PROVISIONING = "/api/v1/provisioning"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
SERVED_OUTSIDE_THE_SCHEMA = frozenset(
    {("GET", "/metrics"), ("GET", "/api/v1/openapi/openapi.json")}
)
"""Documented operations the OpenAPI document leaves out on purpose (the app serves them)."""

Operation = tuple[str, str]

# `POST /api/v1/...` anywhere, or `POST /batch/...` (short for /api/v1/provisioning/batch/...).
_MENTION = re.compile(rf"\b({'|'.join(METHODS)})\s+`?(/[A-Za-z0-9_\-/{{}}.]*)")
_TABLE_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|(.*)$")
_SEPARATOR = re.compile(r"^\|[\s:|-]+\|\s*$")
_PATH_PARAMETER = re.compile(r"\{(\w+):\w+\}")
_GUARD = re.compile(r"^require_step_up_(\w+)$")


def _doc() -> str:
    return API_DOC.read_text(encoding="utf-8")


def _section(title: str) -> str:
    """The text of the `## title` section of api.md."""
    text = _doc()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def _full_path(path: str) -> str:
    path = path.rstrip(".")
    if path.startswith("/api/") or path == "/metrics":
        return path
    return PROVISIONING + path


def mentioned(text: str) -> set[Operation]:
    """Every `METHOD /path` in `text`, short provisioning paths made full."""
    return {(method, _full_path(path)) for method, path in _MENTION.findall(text)}


def table_rows(text: str) -> dict[str, str]:
    """Body rows of the Markdown tables in `text` whose first cell is code: that cell -> the
    rest of the row. Header rows (those above a `|---|` line) are not body rows."""
    rows: dict[str, str] = {}
    lines = text.splitlines()
    for line, below in zip(lines, [*lines[1:], ""], strict=True):
        row = _TABLE_ROW.match(line)
        if row is not None and not _SEPARATOR.match(below):
            rows[row.group(1)] = row.group(2)
    return rows


def openapi_operations() -> set[Operation]:
    """Every path and method of contracts/openapi.json."""
    document = json.loads(OPENAPI.read_text(encoding="utf-8"))
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method.upper() in METHODS
    }


@pytest.fixture(scope="module")
def app() -> Litestar:
    # As orchestrator.api.openapi builds it: routes only, the services are never called.
    return create_app(cast("Services", None), cast("Streams", None), version="test")


def served(app: Litestar) -> dict[Operation, list[str]]:
    """Every operation the app serves, with the names of its guards."""
    operations: dict[Operation, list[str]] = {}
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        path = _PATH_PARAMETER.sub(r"{\1}", route.path)
        for handler in route.route_handlers:
            guards = [guard.__name__ for guard in handler.resolve_guards()]
            for method in handler.http_methods:
                operations[(method, path)] = guards
    return operations


def test_the_endpoint_table_lists_every_operation_of_the_openapi_document() -> None:
    rows = table_rows(_section("Endpoints"))
    in_table = {op for cell in rows for op in mentioned(cell)}
    assert sorted(openapi_operations() - in_table) == []


def test_every_operation_the_doc_mentions_is_in_the_openapi_document(app: Litestar) -> None:
    documented = mentioned(_doc())
    unknown = documented - openapi_operations() - SERVED_OUTSIDE_THE_SCHEMA
    assert sorted(unknown) == []
    assert set(served(app)) >= SERVED_OUTSIDE_THE_SCHEMA


def test_the_openapi_document_is_what_the_app_serves(app: Litestar) -> None:
    # Otherwise the two checks above would compare the doc with a stale contract.
    in_app = {op for op in served(app) if op[0] in METHODS}
    assert openapi_operations() <= in_app


def test_every_error_code_is_documented_with_its_status_and_retryability() -> None:
    rows = table_rows(_section("Error codes"))
    documented: dict[str, tuple[int, bool]] = {}
    for code, rest in rows.items():
        cells = [cell.strip() for cell in rest.split("|")]
        status = re.match(r"\d+", cells[0])
        assert status is not None, f"{code}: no HTTP status in {cells[0]!r}"
        documented[code] = (int(status.group()), cells[1] == "yes")
    expected = {
        code.value: (spec.http_status, spec.retryable) for code, spec in ERROR_SPECS.items()
    }
    assert documented == expected
    assert set(expected) == {code.value for code in ErrorCode}


def test_every_event_type_is_documented() -> None:
    rows = table_rows(_section("The event stream"))
    assert set(rows) == {event.value for event in EventType}


def test_the_step_up_table_lists_exactly_the_gated_routes(app: Litestar) -> None:
    rows = table_rows(_section("TOTP step-up"))
    documented = {
        operation: mentioned(rows.get(operation.value, "")) for operation in GatedOperation
    }
    gated: dict[GatedOperation, set[Operation]] = {operation: set() for operation in GatedOperation}
    for op, guards in served(app).items():
        for guard in guards:
            match = _GUARD.match(guard)
            if match is not None:
                gated[GatedOperation[match.group(1).upper()]].add(op)
    assert documented == gated


def test_mentions_are_read_in_short_and_full_form() -> None:
    text = (
        "`POST /api/v1/auth/step-up`, `DELETE /allowlist/all?confirm=CONFIRM`, "
        "GET /metrics and `GET\n/sessions/{session_id}/report`."
    )
    assert mentioned(text) == {
        ("POST", "/api/v1/auth/step-up"),
        ("DELETE", "/api/v1/provisioning/allowlist/all"),
        ("GET", "/metrics"),
        ("GET", "/api/v1/provisioning/sessions/{session_id}/report"),
    }
