"""API key records. Keys are random and long, so a plain SHA-256 is the right hash: there is
nothing for a slow hash to protect against, and every request pays for it."""

from __future__ import annotations

import hashlib
from datetime import datetime

import msgspec

KEY_PREFIX = "dk"


class ApiKeyRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A stored key: its public id, a label, and the hash of the secret. Never the key."""

    id: str
    name: str
    key_hash: str
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def is_active(self) -> bool:
        """Revoked keys stay listed (for the audit trail) but authenticate nothing."""
        return self.revoked_at is None


def hash_key(key: str) -> str:
    """The stored form of `key`."""
    return hashlib.sha256(key.encode()).hexdigest()


def format_key(key_id: str, secret: str) -> str:
    """The key as handed to its owner: `dk_<id>_<secret>`, so a lookup needs no scan."""
    return f"{KEY_PREFIX}_{key_id}_{secret}"


def key_id_of(key: str) -> str | None:
    """The id embedded in a presented key, or None when it is not shaped like one of ours."""
    parts = key.split("_", 2)  # the secret part may itself contain "_"
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1]
