"""Allowlist use cases: who may receive credentials. Every change is audited."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import msgspec

from orchestrator.batch.audit import Auditor
from orchestrator.domain.allowlist import AllowlistEntry, AllowlistStats, revise
from orchestrator.domain.errors import ErrorCode, OrchestratorError
from orchestrator.domain.mac import Mac
from orchestrator.ports.storage import Store

CLEAR_CONFIRMATION = "CONFIRM"


class AllowlistDraft(msgspec.Struct, frozen=True, kw_only=True):
    """An entry as an operator submits it (MAC already canonical)."""

    mac: Mac
    description: str | None = None
    container_id: str | None = None


class BulkAddOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """How many drafts were new, and how many were already on the list (left unchanged)."""

    added: int
    skipped: int


class ImportOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What an import did: new entries, entries whose description or container changed, and
    entries already exactly so."""

    added: int
    updated: int
    unchanged: int


class BulkRemoveOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """How many MACs were removed, and how many were not on the list."""

    removed: int
    not_found: int


class AllowlistService:
    """Add, edit, list and remove trusted MACs."""

    def __init__(self, store: Store, clock: Callable[[], datetime]) -> None:
        self._entries = store.allowlist
        self._clock = clock
        self._audit = Auditor(store.audit, clock)

    async def put(self, draft: AllowlistDraft) -> tuple[AllowlistEntry, bool]:
        """Add `draft`, or update the existing entry for its MAC; (entry, created)."""
        existing = await self._entries.get(draft.mac)
        if existing is None:
            entry = AllowlistEntry(
                mac=draft.mac,
                added_at=self._clock(),
                description=draft.description,
                container_id=draft.container_id,
            )
        else:
            entry = revise(existing, description=draft.description, container_id=draft.container_id)
        if entry != existing:
            await self._entries.put(entry)
            action = "allowlist.add" if existing is None else "allowlist.update"
            await self._audit.record(action, mac=draft.mac)
        return entry, existing is None

    async def get(self, mac: Mac) -> AllowlistEntry:
        """The entry for `mac`, or DEVICE_NOT_IN_ALLOWLIST."""
        entry = await self._entries.get(mac)
        if entry is None:
            raise OrchestratorError(
                ErrorCode.DEVICE_NOT_IN_ALLOWLIST, f"device {mac} is not on the allowlist"
            )
        return entry

    async def edit(
        self, mac: Mac, *, description: str | None, container_id: str | None
    ) -> AllowlistEntry:
        """Change the description or container of an existing entry."""
        entry = revise(await self.get(mac), description=description, container_id=container_id)
        await self._entries.put(entry)
        await self._audit.record("allowlist.update", mac=mac)
        return entry

    async def list(self, *, available_only: bool) -> list[AllowlistEntry]:
        """Entries by MAC; `available_only` keeps the ones not used yet."""
        return await self._entries.list(available_only=available_only)

    async def remove(self, mac: Mac) -> None:
        """Remove one entry, or DEVICE_NOT_IN_ALLOWLIST."""
        if not await self._entries.remove([mac]):
            raise OrchestratorError(
                ErrorCode.DEVICE_NOT_IN_ALLOWLIST, f"device {mac} is not on the allowlist"
            )
        await self._audit.record("allowlist.remove", mac=mac)

    async def add_many(self, drafts: Sequence[AllowlistDraft]) -> BulkAddOutcome:
        """Add every draft whose MAC is new; existing entries are left as they are."""
        now = self._clock()
        existing = {e.mac for e in await self._entries.list()}
        fresh: dict[Mac, AllowlistEntry] = {}
        for draft in drafts:
            if draft.mac in existing or draft.mac in fresh:
                continue
            fresh[draft.mac] = AllowlistEntry(
                mac=draft.mac,
                added_at=now,
                description=draft.description,
                container_id=draft.container_id,
            )
        await self._entries.put_many(list(fresh.values()))
        await self._audit.record("allowlist.bulk_add", detail=f"added={len(fresh)}")
        return BulkAddOutcome(added=len(fresh), skipped=len(drafts) - len(fresh))

    async def import_entries(self, drafts: Sequence[AllowlistDraft]) -> ImportOutcome:
        """Add new MACs and update existing ones from an operator's file, in one transaction.
        A field left empty in the file keeps the entry's value."""
        now = self._clock()
        existing = {e.mac: e for e in await self._entries.list()}
        changed: list[AllowlistEntry] = []
        added = 0
        for draft in drafts:
            old = existing.get(draft.mac)
            if old is None:
                added += 1
                changed.append(
                    AllowlistEntry(
                        mac=draft.mac,
                        added_at=now,
                        description=draft.description,
                        container_id=draft.container_id,
                    )
                )
                continue
            new = revise(old, description=draft.description, container_id=draft.container_id)
            if new != old:
                changed.append(new)
        await self._entries.put_many(changed)
        outcome = ImportOutcome(
            added=added, updated=len(changed) - added, unchanged=len(drafts) - len(changed)
        )
        await self._audit.record(
            "allowlist.import",
            detail=f"added={outcome.added} updated={outcome.updated} unchanged={outcome.unchanged}",
        )
        return outcome

    async def remove_many(self, macs: Sequence[Mac]) -> BulkRemoveOutcome:
        """Remove these MACs; unknown ones are counted, not an error."""
        unique = list(dict.fromkeys(macs))
        removed = await self._entries.remove(unique)
        await self._audit.record("allowlist.bulk_remove", detail=f"removed={len(removed)}")
        return BulkRemoveOutcome(removed=len(removed), not_found=len(unique) - len(removed))

    async def clear(self, confirm: str | None) -> int:
        """Empty the allowlist; the caller must send the confirmation word."""
        if confirm is None:
            raise OrchestratorError(
                ErrorCode.MISSING_PARAMETER,
                "clearing the allowlist needs confirmation",
                details=f"add ?confirm={CLEAR_CONFIRMATION} to the request",
            )
        if confirm != CLEAR_CONFIRMATION:
            raise OrchestratorError(
                ErrorCode.VALIDATION_FAILED,
                "wrong confirmation word",
                details=f"confirm must be {CLEAR_CONFIRMATION}",
            )
        cleared = await self._entries.clear()
        await self._audit.record("allowlist.clear", detail=f"cleared={cleared}")
        return cleared

    async def stats(self) -> AllowlistStats:
        """Totals: all, used, available."""
        entries = await self._entries.list()
        used = sum(e.used_at is not None for e in entries)
        return AllowlistStats(total=len(entries), used=used, available=len(entries) - used)
