"""The allowlist in SQLite: trusted MACs."""

from __future__ import annotations

import builtins
from collections.abc import Sequence

import msgspec

from orchestrator.domain.allowlist import AllowlistEntry
from orchestrator.domain.mac import Mac
from orchestrator.storage.codec import decode_row, encode_optional_time, encode_time
from orchestrator.storage.database import Database, Params

_SELECT = "SELECT mac, added_at, description, container_id, used_at FROM allowlist"
_UPSERT = (
    "INSERT INTO allowlist (mac, added_at, description, container_id, used_at)"
    " VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (mac) DO UPDATE SET added_at = excluded.added_at,"
    " description = excluded.description, container_id = excluded.container_id,"
    " used_at = excluded.used_at"
)


def _fields(entry: AllowlistEntry) -> Params:
    return (
        entry.mac,
        encode_time(entry.added_at),
        entry.description,
        entry.container_id,
        encode_optional_time(entry.used_at),
    )


class SqliteAllowlistRepository:
    """AllowlistRepository over the `allowlist` table.

    Reads come from a copy in memory, loaded on first use and dropped by every write: the
    batch view reads the whole allowlist on each poll of a dashboard, and during a batch the
    database is busy with the engine's writes (and their checkpoints), which made those reads
    wait. This process is the table's only writer.
    """

    def __init__(self, database: Database) -> None:
        self._database = database
        self._entries: dict[Mac, AllowlistEntry] | None = None
        """Every entry by MAC, in MAC order; None until loaded or after a write."""
        self._writes = 0
        """Counts writes begun, so a load that raced one is not kept."""

    async def _cached(self) -> dict[Mac, AllowlistEntry]:
        if self._entries is not None:
            return self._entries
        writes = self._writes
        rows = await self._database.fetch_all(_SELECT + " ORDER BY mac")
        entries = {row["mac"]: decode_row(AllowlistEntry, dict(row)) for row in rows}
        if writes == self._writes:
            self._entries = entries
        return entries

    def _changing(self) -> None:
        self._writes += 1
        self._entries = None

    async def get(self, mac: Mac) -> AllowlistEntry | None:
        """The entry for `mac`, or None."""
        return (await self._cached()).get(mac)

    async def put(self, entry: AllowlistEntry) -> None:
        """Insert or replace an entry."""
        self._changing()
        try:
            await self._database.run(_UPSERT, _fields(entry))
        finally:
            self._changing()

    async def put_many(self, entries: Sequence[AllowlistEntry]) -> None:
        """Insert or replace several entries in one transaction."""
        rows = [_fields(entry) for entry in entries]
        if not rows:
            return
        self._changing()
        try:
            async with self._database.transaction() as statements:
                await statements.execute_many(_UPSERT, rows)
        finally:
            self._changing()

    async def list(self, *, available_only: bool = False) -> builtins.list[AllowlistEntry]:
        """Entries ordered by MAC; `available_only` keeps the unused ones."""
        entries = (await self._cached()).values()
        return [e for e in entries if not available_only or e.used_at is None]

    async def remove(self, macs: Sequence[Mac]) -> builtins.list[Mac]:
        """Delete these entries in one statement; return the MACs that existed, in the order
        they were asked for."""
        wanted = builtins.list(dict.fromkeys(macs))
        if not wanted:
            return []
        self._changing()
        try:
            # One JSON parameter instead of one placeholder per MAC: no variable-count limit.
            rows = await self._database.fetch_all(
                "DELETE FROM allowlist WHERE mac IN (SELECT value FROM json_each(?)) RETURNING mac",
                (msgspec.json.encode(wanted).decode(),),
            )
        finally:
            self._changing()
        gone = {row["mac"] for row in rows}
        return [mac for mac in wanted if mac in gone]

    async def clear(self) -> int:
        """Delete every entry; return how many there were."""
        self._changing()
        try:
            return await self._database.execute("DELETE FROM allowlist")
        finally:
            self._changing()
