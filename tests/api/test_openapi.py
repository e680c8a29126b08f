"""contracts/openapi.json is generated from the code and must not drift from it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.api.openapi import openapi_document
from orchestrator.contracts import CONTRACTS

CONTRACTS_DIR = Path(__file__).parents[2] / "contracts"


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_committed_contracts_match_the_code(name: str) -> None:
    assert (CONTRACTS_DIR / name).read_text(encoding="utf-8") == CONTRACTS[name](), (
        f"contracts/{name} is stale: run `make contracts` and commit the result"
    )


def _resolve(document: dict[str, Any], ref: str) -> dict[str, Any]:
    schema: dict[str, Any] = document
    for part in ref.removeprefix("#/").split("/"):
        schema = schema[part]
    return schema


def test_every_error_response_is_documented_as_the_envelope() -> None:
    document = openapi_document()
    envelope = document["components"]["schemas"]["ErrorEnvelope"]
    assert set(envelope["required"]) >= {"success", "error", "code", "correlation_id", "timestamp"}
    operations = [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]
    assert len(operations) >= 26
    for path, method, operation in operations:
        for status, response in operation["responses"].items():
            if "text/event-stream" in response["content"]:
                assert int(status) == 200, (path, method, status)
                continue
            schema = response["content"]["application/json"]["schema"]
            target = _resolve(document, schema["$ref"])
            if int(status) >= 400:
                assert target is envelope, (path, method, status)
            else:
                assert set(target["required"]) >= {"success", "data", "correlation_id"}
        if path.startswith("/api/v1/provisioning"):
            assert "401" in operation["responses"], (path, method)


def test_contract_paths_are_all_served() -> None:
    paths = set(openapi_document()["paths"])
    base = "/api/v1/provisioning"
    expected = {
        "/batch/start", "/batch/{session_id}", "/batch/{session_id}/stop",
        "/batch/{session_id}/close", "/batch/{session_id}/pause", "/batch/{session_id}/resume",
        "/batch/{session_id}/devices", "/batch/{session_id}/devices/{mac}/provision",
        "/batch/{session_id}/provision-all", "/batch/{session_id}/devices/{mac}/retry",
        "/batch/{session_id}/devices/{mac}/skip", "/network/status", "/batch/network",
        "/allowlist", "/allowlist/{mac}", "/allowlist/bulk", "/allowlist/bulk-remove",
        "/allowlist/all", "/allowlist/stats", "/sessions/recoverable",
        "/sessions/{session_id}/resume", "/sessions/{session_id}", "/sessions/history",
    }  # fmt: skip
    assert {base + p for p in expected} <= paths
    assert "/api/v1/health" in paths
    assert json.dumps(openapi_document())  # serialisable
