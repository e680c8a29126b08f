"""contracts/v1-api.ts declares every schema of the API and every event of the stream.

The appliance has no Node toolchain, so these tests check the structure (contracts/README.md
says how to type-check it with tsc). Staleness is tests/api/test_openapi.py's business:
v1-api.ts is one of CONTRACTS.
"""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path

import msgspec
import pytest

from orchestrator.domain.events import Event, EventType, Payload
from orchestrator.typescript import (
    EVENT_UNION,
    SSE_PAYLOADS,
    _ts,
    components,
    event_name,
    render,
)

OPENAPI = Path(__file__).parents[2] / "contracts" / "openapi.json"
_DECLARATION = re.compile(r"^export (?:interface|type) (\w+)", re.MULTILINE)
_INTERFACE = re.compile(r"^export interface (\w+) \{\n(.*?)^\}", re.MULTILINE | re.DOTALL)
_PROPERTY = re.compile(r"^  (\w+)(\??): ", re.MULTILINE)


@pytest.fixture(scope="module")
def text() -> str:
    return render()


def test_every_openapi_component_is_declared_once(text: str) -> None:
    declared = _DECLARATION.findall(text)
    assert len(declared) == len(set(declared)), "a name is declared twice"
    schemas = json.loads(OPENAPI.read_text(encoding="utf-8"))["components"]["schemas"]
    assert set(schemas) <= set(declared)


def test_interfaces_have_the_schema_properties_and_optionality(text: str) -> None:
    schemas = components()
    interfaces = dict(_INTERFACE.findall(text))
    assert "CandidateView" in interfaces
    for name, body in interfaces.items():
        if name not in schemas:
            continue
        schema = schemas[name]
        required = set(schema.get("required", ()))
        properties = dict(_PROPERTY.findall(body))
        assert set(properties) == set(schema["properties"]), name
        for key, optional in properties.items():
            assert (optional == "") == (key in required), (name, key)


def test_the_stream_union_covers_every_event_type(text: str) -> None:
    assert set(SSE_PAYLOADS) == set(EventType)
    payloads = {p for p in SSE_PAYLOADS.values() if p is not None}
    assert payloads == set(typing.get_args(Payload)) - {type(None)}
    union = text.split(f"export type {EVENT_UNION} =", 1)[1].split(";", 1)[0]
    for event_type, payload in SSE_PAYLOADS.items():
        name = event_name(event_type)
        assert re.search(rf"\| {name}\b", union), name
        target = payload.__name__ if payload is not None else "null"
        assert f'export type {name} = EventFrame<"{event_type.value}", {target}>;' in text
        assert f'  | "{event_type.value}"' in text  # in EventType


def test_the_event_frame_has_the_envelope_fields(text: str) -> None:
    frame = dict(_INTERFACE.findall(text.replace("EventFrame<K extends EventType, P>", "Frame")))
    fields = dict(_PROPERTY.findall(frame["Frame"]))
    tag_field = Event.__struct_config__.tag_field
    assert tag_field is not None
    expected = {f.name: "" if f.required else "?" for f in msgspec.structs.fields(Event)}
    assert fields == {tag_field: "", **expected}
    assert expected == {"type": "", "timestamp": "", "payload": "", "session_id": "?"}


def test_the_envelope_is_generic(text: str) -> None:
    assert "export interface Success<T> {\n  success: boolean;\n  data: T;\n" in text
    assert "export type Success_StartData = Success<StartData>;" in text


def test_braces_balance_and_comments_close(text: str) -> None:
    assert text.count("{") == text.count("}")
    assert text.count("/**") == text.count("*/")


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "string", "format": "date-time"}, "string"),
        ({"type": "integer"}, "number"),
        ({"oneOf": [{"type": "string"}, {"type": "null"}]}, "string | null"),
        ({"anyOf": [{"$ref": "#/components/schemas/X"}, {"type": "null"}]}, "X | null"),
        ({"type": ["string", "null"]}, "string | null"),
        ({"type": "array", "items": {"$ref": "#/x/Y"}}, "Y[]"),
        ({"type": "array", "items": {"enum": ["a", "b"]}}, '("a" | "b")[]'),
        ({"type": "object", "additionalProperties": {"type": "integer"}}, "Record<string, number>"),
        ({"type": "object"}, "Record<string, unknown>"),
        ({"const": True}, "true"),
        ({}, "unknown"),
        (
            {"type": "object", "properties": {"a": {"type": "boolean"}}, "required": []},
            "{\n  a?: boolean;\n}",
        ),
    ],
)
def test_schema_to_typescript(schema: dict[str, object], expected: str) -> None:
    assert _ts(schema) == expected
