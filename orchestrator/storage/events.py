"""The retained event log in SQLite; SSE replays from it after a reconnect."""

from __future__ import annotations

import msgspec

from orchestrator.domain.events import Event
from orchestrator.ports.storage import StoredEvent
from orchestrator.storage.database import Database

_ENCODER = msgspec.json.Encoder()


class SqliteEventLog:
    """EventLog over the `events` table (AUTOINCREMENT: a seq is never reused)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def append(self, event: Event) -> int:
        """Store `event`; return its sequence number."""
        return await self._database.insert(
            "INSERT INTO events (session_id, data) VALUES (?, ?)",
            (event.session_id, _ENCODER.encode(event)),
        )

    async def since(self, seq: int, limit: int = 10_000) -> list[StoredEvent]:
        """Events after `seq`, oldest first, at most `limit`."""
        if limit < 0:
            raise ValueError(f"limit must not be negative, got {limit}")
        rows = await self._database.fetch_all(
            "SELECT seq, session_id, data FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, limit),
        )
        return [
            StoredEvent(seq=row["seq"], session_id=row["session_id"], data=bytes(row["data"]))
            for row in rows
        ]

    async def bounds(self) -> tuple[int, int] | None:
        """(oldest, newest) retained sequence numbers, or None when empty."""
        row = await self._database.fetch_one("SELECT min(seq), max(seq) FROM events")
        if row is None or row[0] is None:
            return None
        return int(row[0]), int(row[1])

    async def trim(self, keep_last: int) -> int:
        """Drop all but the newest `keep_last` events; return how many went."""
        if keep_last < 0:
            raise ValueError(f"keep_last must not be negative, got {keep_last}")
        # The subquery is the newest seq to drop (NULL when there are too few rows to trim).
        return await self._database.execute(
            "DELETE FROM events WHERE seq <= "
            "(SELECT seq FROM events ORDER BY seq DESC LIMIT 1 OFFSET ?)",
            (keep_last,),
        )
