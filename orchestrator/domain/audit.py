"""Audit entries: who did what, when, with what outcome. Never a secret."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec

from orchestrator.domain.mac import Mac


class Outcome(StrEnum):
    """How an audited action ended."""

    OK = "ok"
    DENIED = "denied"
    FAILED = "failed"


SYSTEM_ACTOR = "system"
"""The actor of transitions the orchestrator makes by itself (discovery, engine, expiry)."""


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One append-only audit record. `actor` is an API key id, never the key."""

    at: datetime
    actor: str
    action: str
    outcome: Outcome
    session_id: str | None = None
    mac: Mac | None = None
    correlation_id: str | None = None
    detail: str | None = None
    id: int | None = None
    """Assigned by the audit log on append."""
