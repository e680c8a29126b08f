"""The TOTP enrollment in SQLite: one row holding the sealed seed and the last used step."""

from __future__ import annotations

from datetime import datetime

from orchestrator.domain.totp import NO_STEP_USED, TotpEnrollment
from orchestrator.storage.codec import decode_row, encode_time
from orchestrator.storage.database import Database


class SqliteTotpRepository:
    """TotpRepository over the one-row `totp` table."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def enroll(self, sealed_seed: bytes, at: datetime) -> None:
        """Store a new seed, replacing any earlier one; no step of it has been used yet."""
        await self._database.execute(
            "INSERT INTO totp (id, sealed_seed, enrolled_at, last_used_step) VALUES (1, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET sealed_seed = excluded.sealed_seed,"
            " enrolled_at = excluded.enrolled_at, last_used_step = excluded.last_used_step",
            (bytes(sealed_seed), encode_time(at), NO_STEP_USED),
        )

    async def get(self) -> TotpEnrollment | None:
        """The enrollment, or None before the first `enroll`."""
        row = await self._database.fetch_one(
            "SELECT sealed_seed, enrolled_at, last_used_step FROM totp WHERE id = 1"
        )
        return None if row is None else decode_row(TotpEnrollment, dict(row))

    async def claim_step(self, step: int) -> bool:
        """Record `step` as used if it is newer than the last used step; True only for the
        caller whose UPDATE changed the row (SQLite runs each statement atomically)."""
        changed = await self._database.execute(
            "UPDATE totp SET last_used_step = ? WHERE id = 1 AND last_used_step < ?",
            (step, step),
        )
        return changed == 1
