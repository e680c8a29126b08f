"""Provisioning attempts in SQLite, keyed by (session id, MAC, number)."""

from __future__ import annotations

from orchestrator.domain.attempt import Attempt
from orchestrator.domain.mac import Mac
from orchestrator.storage.codec import decode_row, encode_optional_time, encode_time
from orchestrator.storage.database import Database

_COLUMNS = (
    "session_id, mac, number, nonce, phase, strategy, device_name, username, status_topic,"
    " created_at, updated_at, delivered_at, failure_reason"
)


class SqliteAttemptRepository:
    """AttemptRepository over the `attempts` table."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def save(self, attempt: Attempt) -> None:
        """Insert or replace one attempt (its candidate must exist)."""
        await self._database.run(
            f"INSERT INTO attempts ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608 - constant column list
            " ON CONFLICT (session_id, mac, number) DO UPDATE SET phase = excluded.phase,"
            " updated_at = excluded.updated_at, delivered_at = excluded.delivered_at,"
            " failure_reason = excluded.failure_reason",
            (
                attempt.session_id,
                attempt.mac,
                attempt.number,
                attempt.nonce,
                attempt.phase.value,
                attempt.strategy,
                attempt.device_name,
                attempt.username,
                attempt.status_topic,
                encode_time(attempt.created_at),
                encode_time(attempt.updated_at),
                encode_optional_time(attempt.delivered_at),
                attempt.failure_reason,
            ),
        )

    async def latest(self, session_id: str, mac: Mac) -> Attempt | None:
        """The device's newest attempt in the session, or None."""
        row = await self._database.fetch_one(
            f"SELECT {_COLUMNS} FROM attempts WHERE session_id = ? AND mac = ?"  # noqa: S608 - constant column list
            " ORDER BY number DESC LIMIT 1",
            (session_id, mac),
        )
        return None if row is None else decode_row(Attempt, dict(row))

    async def latest_for_session(self, session_id: str) -> list[Attempt]:
        """The newest attempt of every device of the session that has one, by MAC."""
        rows = await self._database.fetch_all(
            f"SELECT {_COLUMNS} FROM attempts AS a WHERE session_id = ? AND number ="  # noqa: S608 - constant column list
            " (SELECT max(number) FROM attempts AS b"
            "  WHERE b.session_id = a.session_id AND b.mac = a.mac) ORDER BY mac",
            (session_id,),
        )
        return [decode_row(Attempt, dict(row)) for row in rows]
