"""The append-only audit log in SQLite (triggers refuse UPDATE and DELETE)."""

from __future__ import annotations

from orchestrator.domain.audit import AuditEntry
from orchestrator.ports.storage import AuditQuery
from orchestrator.storage.codec import decode_row, encode_time
from orchestrator.storage.database import Database

_SELECT = (
    "SELECT id, at, actor, action, outcome, session_id, mac, correlation_id, detail FROM audit_log"
)


class SqliteAuditLog:
    """AuditLog over the `audit_log` table."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def append(self, entry: AuditEntry) -> int:
        """Store `entry` (its `id` is ignored); return the id assigned."""
        return await self._database.insert(
            "INSERT INTO audit_log (at, actor, action, outcome, session_id, mac, correlation_id,"
            " detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                encode_time(entry.at),
                entry.actor,
                entry.action,
                entry.outcome.value,
                entry.session_id,
                entry.mac,
                entry.correlation_id,
                entry.detail,
            ),
        )

    async def page(self, query: AuditQuery) -> list[AuditEntry]:
        """Entries matching `query`, newest (highest id) first, with their ids set."""
        if query.limit < 0:
            raise ValueError(f"limit must not be negative, got {query.limit}")
        # Only the filters asked for go into the WHERE clause, so SQLite can use the index of
        # the one that is there; the clauses are fixed text and every value is a parameter.
        clauses: list[str] = []
        params: list[object] = []
        if query.mac is not None:
            clauses.append("mac = ?")
            params.append(query.mac)
        if query.action is not None:
            clauses.append("action = ?")
            params.append(query.action)
        if query.since is not None:
            clauses.append("at >= ?")
            params.append(encode_time(query.since))
        if query.before_id is not None:
            clauses.append("id < ?")
            params.append(query.before_id)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        sql = f"{_SELECT}{where} ORDER BY id DESC LIMIT ?"
        rows = await self._database.fetch_all(sql, (*params, query.limit))
        return [decode_row(AuditEntry, dict(row)) for row in rows]
