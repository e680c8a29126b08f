"""API key records in SQLite (hashes only, never a key)."""

from __future__ import annotations

import builtins
from datetime import datetime

from orchestrator.domain.apikey import ApiKeyRecord
from orchestrator.storage.codec import decode_row, encode_optional_time, encode_time
from orchestrator.storage.database import Database

_SELECT = "SELECT id, name, key_hash, created_at, revoked_at FROM api_keys"


class SqliteApiKeyRepository:
    """ApiKeyRepository over the `api_keys` table."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def add(self, record: ApiKeyRecord) -> None:
        """Store a new key record; its id must be unused."""
        await self._database.execute(
            "INSERT INTO api_keys (id, name, key_hash, created_at, revoked_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (
                record.id,
                record.name,
                record.key_hash,
                encode_time(record.created_at),
                encode_optional_time(record.revoked_at),
            ),
        )

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        """The record with this id, or None."""
        row = await self._database.fetch_one(_SELECT + " WHERE id = ?", (key_id,))
        return None if row is None else decode_row(ApiKeyRecord, dict(row))

    async def list(self) -> builtins.list[ApiKeyRecord]:
        """Every record, oldest first."""
        rows = await self._database.fetch_all(_SELECT + " ORDER BY created_at, id")
        return [decode_row(ApiKeyRecord, dict(row)) for row in rows]

    async def revoke(self, key_id: str, at: datetime) -> bool:
        """Mark a key revoked; False when no active key has this id."""
        changed = await self._database.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (encode_time(at), key_id),
        )
        return changed == 1
