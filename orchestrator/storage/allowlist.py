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
    """AllowlistRepository over the `allowlist` table."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def get(self, mac: Mac) -> AllowlistEntry | None:
        """The entry for `mac`, or None."""
        row = await self._database.fetch_one(_SELECT + " WHERE mac = ?", (mac,))
        return None if row is None else decode_row(AllowlistEntry, dict(row))

    async def put(self, entry: AllowlistEntry) -> None:
        """Insert or replace an entry."""
        await self._database.execute(_UPSERT, _fields(entry))

    async def put_many(self, entries: Sequence[AllowlistEntry]) -> None:
        """Insert or replace several entries in one transaction."""
        rows = [_fields(entry) for entry in entries]
        if not rows:
            return
        async with self._database.transaction() as statements:
            await statements.execute_many(_UPSERT, rows)

    async def list(self, *, available_only: bool = False) -> builtins.list[AllowlistEntry]:
        """Entries ordered by MAC; `available_only` keeps the unused ones."""
        where = " WHERE used_at IS NULL" if available_only else ""
        rows = await self._database.fetch_all(_SELECT + where + " ORDER BY mac")
        return [decode_row(AllowlistEntry, dict(row)) for row in rows]

    async def remove(self, macs: Sequence[Mac]) -> builtins.list[Mac]:
        """Delete these entries in one statement; return the MACs that existed, in the order
        they were asked for."""
        wanted = builtins.list(dict.fromkeys(macs))
        if not wanted:
            return []
        # One JSON parameter instead of one placeholder per MAC: no variable-count limit.
        rows = await self._database.fetch_all(
            "DELETE FROM allowlist WHERE mac IN (SELECT value FROM json_each(?)) RETURNING mac",
            (msgspec.json.encode(wanted).decode(),),
        )
        gone = {row["mac"] for row in rows}
        return [mac for mac in wanted if mac in gone]

    async def clear(self) -> int:
        """Delete every entry; return how many there were."""
        return await self._database.execute("DELETE FROM allowlist")
