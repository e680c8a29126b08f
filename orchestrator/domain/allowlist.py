"""Allowlist entries: the devices the operator trusts to receive credentials."""

from __future__ import annotations

from datetime import datetime

import msgspec

from orchestrator.domain.mac import Mac


class AllowlistEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A trusted MAC. `used_at` is set once a device behind it was verified."""

    mac: Mac
    added_at: datetime
    description: str | None = None
    container_id: str | None = None
    used_at: datetime | None = None


class AllowlistEntryView(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Contract DeviceAllowlistEntry; `used` is derived from `used_at`."""

    mac: Mac
    added_at: datetime
    used: bool
    description: str | None = None
    container_id: str | None = None
    used_at: datetime | None = None

    @classmethod
    def of(cls, entry: AllowlistEntry) -> AllowlistEntryView:
        """The read model of `entry`."""
        return cls(
            mac=entry.mac,
            added_at=entry.added_at,
            used=entry.used_at is not None,
            description=entry.description,
            container_id=entry.container_id,
            used_at=entry.used_at,
        )


class AllowlistStats(msgspec.Struct, frozen=True, kw_only=True):
    """Totals for the allowlist screen."""

    total: int
    used: int
    available: int


def revise(
    entry: AllowlistEntry, *, description: str | None, container_id: str | None
) -> AllowlistEntry:
    """Apply an edit: a field left out (None) keeps its value, an empty string clears it."""
    return msgspec.structs.replace(
        entry,
        description=_revised(entry.description, description),
        container_id=_revised(entry.container_id, container_id),
    )


def _revised(current: str | None, given: str | None) -> str | None:
    if given is None:
        return current
    return given or None
