"""Batch sessions in SQLite, with the sealed target password stored beside each."""

from __future__ import annotations

from datetime import datetime

import msgspec

from orchestrator.domain.session import Session, SessionState
from orchestrator.ports.storage import StorageError
from orchestrator.storage.codec import (
    decode_json,
    decode_row,
    encode_optional_time,
    encode_time,
)
from orchestrator.storage.database import Database, Params, Row

_SELECT = (
    "SELECT id, state, target_ssid, config, created_at, updated_at, run_id, max_retries,"
    " expires_at, closed_reason, cloud FROM sessions"
)


def _fields(session: Session) -> Params:
    """Column values in the order of `_SELECT` (id first)."""
    return (
        session.id,
        session.state.value,
        session.target_ssid,
        msgspec.json.encode(session.config).decode(),
        encode_time(session.created_at),
        encode_time(session.updated_at),
        session.run_id,
        session.max_retries,
        encode_optional_time(session.expires_at),
        None if session.closed_reason is None else session.closed_reason.value,
        None if session.cloud is None else msgspec.json.encode(session.cloud).decode(),
    )


def _session(row: Row) -> Session:
    fields = dict(row)
    fields["config"] = decode_json(fields["config"])
    if fields["cloud"] is None:
        del fields["cloud"]
    else:
        fields["cloud"] = decode_json(fields["cloud"])
    return decode_row(Session, fields)


class SqliteSessionRepository:
    """SessionRepository over the `sessions` table."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def create(
        self, session: Session, sealed_password: bytes, sealed_cloud: bytes | None = None
    ) -> None:
        """Insert a new session; its id must be unused."""
        await self._database.execute(
            "INSERT INTO sessions (id, state, target_ssid, config, created_at, updated_at,"
            " run_id, max_retries, expires_at, closed_reason, cloud, sealed_password,"
            " sealed_cloud) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                *_fields(session),
                bytes(sealed_password),
                None if sealed_cloud is None else bytes(sealed_cloud),
            ),
        )

    async def save(self, session: Session) -> None:
        """Overwrite an existing session's fields (the sealed password is kept)."""
        session_id, *rest = _fields(session)
        changed = await self._database.execute(
            "UPDATE sessions SET state = ?, target_ssid = ?, config = ?, created_at = ?,"
            " updated_at = ?, run_id = ?, max_retries = ?, expires_at = ?, closed_reason = ?,"
            " cloud = ? WHERE id = ?",
            (*rest, session_id),
        )
        if changed == 0:
            raise StorageError(f"cannot save session {session.id}: it does not exist")

    async def get(self, session_id: str) -> Session | None:
        """The session with this id, or None."""
        row = await self._database.fetch_one(_SELECT + " WHERE id = ?", (session_id,))
        return None if row is None else _session(row)

    async def sealed_password(self, session_id: str) -> bytes | None:
        """The sealed target password of a session, or None for an unknown id."""
        row = await self._database.fetch_one(
            "SELECT sealed_password FROM sessions WHERE id = ?", (session_id,)
        )
        return None if row is None else bytes(row["sealed_password"])

    async def sealed_cloud(self, session_id: str) -> bytes | None:
        """The sealed cloud registration secrets of a session, or None (none, or unknown id)."""
        row = await self._database.fetch_one(
            "SELECT sealed_cloud FROM sessions WHERE id = ?", (session_id,)
        )
        return None if row is None or row["sealed_cloud"] is None else bytes(row["sealed_cloud"])

    async def list_unclosed(self) -> list[Session]:
        """Every session whose state is not `closed`, oldest first."""
        rows = await self._database.fetch_all(
            _SELECT + " WHERE state != ? ORDER BY created_at, id", (SessionState.CLOSED.value,)
        )
        return [_session(row) for row in rows]

    async def history(self, limit: int) -> list[Session]:
        """The most recently created sessions, newest first, at most `limit`."""
        if limit < 0:
            raise ValueError(f"limit must not be negative, got {limit}")
        rows = await self._database.fetch_all(
            _SELECT + " ORDER BY created_at DESC, id DESC LIMIT ?", (limit,)
        )
        return [_session(row) for row in rows]

    async def delete_closed_before(self, cutoff: datetime) -> int:
        """Delete closed sessions last updated before `cutoff`; candidates go by cascade."""
        return await self._database.execute(
            "DELETE FROM sessions WHERE state = ? AND updated_at < ?",
            (SessionState.CLOSED.value, encode_time(cutoff)),
        )
