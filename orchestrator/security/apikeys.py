"""API keys: issued once, stored as hashes, checked in constant time."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from datetime import datetime

from orchestrator.domain.apikey import ApiKeyRecord, format_key, hash_key, key_id_of
from orchestrator.ports.storage import ApiKeyRepository

_ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"


class ApiKeys:
    """Issue, list, revoke and verify API keys."""

    def __init__(self, repository: ApiKeyRepository, clock: Callable[[], datetime]) -> None:
        self._repository = repository
        self._clock = clock

    async def create(self, name: str) -> tuple[ApiKeyRecord, str]:
        """A new key: its record, and the key itself (shown once, never stored)."""
        key_id = "".join(secrets.choice(_ID_CHARS) for _ in range(10))
        key = format_key(key_id, secrets.token_urlsafe(32))
        record = ApiKeyRecord(
            id=key_id, name=name, key_hash=hash_key(key), created_at=self._clock()
        )
        await self._repository.add(record)
        return record, key

    async def list(self) -> list[ApiKeyRecord]:
        """Every key record, revoked ones included."""
        return await self._repository.list()

    async def revoke(self, key_id: str) -> bool:
        """Revoke a key by id; False when there is no such active key."""
        return await self._repository.revoke(key_id, self._clock())

    async def active(self, key_id: str) -> ApiKeyRecord | None:
        """The record of an active (not revoked) key, by id."""
        record = await self._repository.get(key_id)
        return record if record is not None and record.is_active else None

    async def verify(self, presented: str) -> ApiKeyRecord | None:
        """The active record matching `presented`, or None.

        The id inside the key selects one record; the secret part is compared as a hash with
        `hmac.compare_digest`, so timing does not reveal how much of a guess was right.
        """
        key_id = key_id_of(presented)
        record = await self._repository.get(key_id) if key_id else None
        expected = record.key_hash if record else hash_key("")
        matches = hmac.compare_digest(hash_key(presented), expected)
        if record is None or not matches or not record.is_active:
            return None
        return record
