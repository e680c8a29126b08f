"""Seed 000's provisioning repository in SQLite: `devices` and `provisioning_sessions`, plus
`pairing_codes_issued` (every pairing code ever issued, so none is issued twice)."""

from __future__ import annotations

from datetime import datetime

from orchestrator.domain.pairing import DeviceRecord, PairingSession
from orchestrator.storage.codec import decode_row, encode_optional_time, encode_time
from orchestrator.storage.database import Database, Statements


class SqliteProvisioningRepository:
    """ProvisioningRepository over the `devices`, `provisioning_sessions` and
    `pairing_codes_issued` tables.

    A code is valid while `now < expires_at` and deleted once `expires_at <= now`, the same
    boundary as `PairingSession.is_expired`. (Seed 000 writes `expires_at < now` for the
    delete, which would leave a code at its exact expiry neither findable nor deleted.)
    """

    def __init__(self, database: Database) -> None:
        self._database = database

    async def save_device(self, device: DeviceRecord) -> None:
        """Insert or replace a device record."""
        await self._database.execute(
            "INSERT INTO devices (device_id, device_label, server_url, provisioning_status,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (device_id) DO UPDATE SET device_label = excluded.device_label,"
            " server_url = excluded.server_url,"
            " provisioning_status = excluded.provisioning_status,"
            " created_at = excluded.created_at, updated_at = excluded.updated_at",
            (
                device.device_id,
                device.device_label,
                device.server_url,
                device.provisioning_status,
                encode_time(device.created_at),
                encode_time(device.updated_at),
            ),
        )

    async def find_device_by_id(self, device_id: str) -> DeviceRecord | None:
        """The device record, or None."""
        row = await self._database.fetch_one(
            "SELECT device_id, device_label, server_url, provisioning_status, created_at,"
            " updated_at FROM devices WHERE device_id = ?",
            (device_id,),
        )
        return None if row is None else decode_row(DeviceRecord, dict(row))

    async def save_session(self, session: PairingSession) -> None:
        """Insert or replace a pairing session (keyed by its code); its code counts as issued."""
        async with self._database.transaction() as statements:
            await _record_issued(statements, session)
            await _upsert(statements, session)

    async def issue_session(self, session: PairingSession) -> bool:
        """Store `session` if its code was never issued, replacing the device's earlier
        sessions; False, storing nothing, when the code was issued before."""
        async with self._database.transaction() as statements:
            if not await _record_issued(statements, session):
                return False
            await statements.execute(
                "DELETE FROM provisioning_sessions WHERE device_id = ?", (session.device_id,)
            )
            await _upsert(statements, session)
            return True

    async def find_session_by_code(self, pairing_code: str, now: datetime) -> PairingSession | None:
        """The session for this code only while `now < expires_at` (claimed or not)."""
        row = await self._database.fetch_one(
            "SELECT pairing_code, device_id, device_ip, created_at, expires_at, claimed_by,"
            " claimed_at FROM provisioning_sessions"
            " WHERE pairing_code = ? AND expires_at > ?",
            (pairing_code, encode_time(now)),
        )
        return None if row is None else decode_row(PairingSession, dict(row))

    async def find_live_session_for_device(
        self, device_id: str, now: datetime
    ) -> PairingSession | None:
        """The device's unexpired, unclaimed session (the newest, should there be several)."""
        row = await self._database.fetch_one(
            "SELECT pairing_code, device_id, device_ip, created_at, expires_at, claimed_by,"
            " claimed_at FROM provisioning_sessions"
            " WHERE device_id = ? AND expires_at > ? AND claimed_by IS NULL"
            " ORDER BY created_at DESC LIMIT 1",
            (device_id, encode_time(now)),
        )
        return None if row is None else decode_row(PairingSession, dict(row))

    async def claim_session(
        self, pairing_code: str, claimant: str, now: datetime
    ) -> PairingSession | None:
        """Claim this code's unexpired session for `claimant` in one conditional UPDATE: the
        first claim and repeats by the same claimant get the session, anyone else None."""
        async with self._database.transaction() as statements:
            row = await statements.fetch_one(
                "UPDATE provisioning_sessions SET claimed_by = ?,"
                " claimed_at = COALESCE(claimed_at, ?)"
                " WHERE pairing_code = ? AND expires_at > ?"
                " AND (claimed_by IS NULL OR claimed_by = ?)"
                " RETURNING pairing_code, device_id, device_ip, created_at, expires_at,"
                " claimed_by, claimed_at",
                (claimant, encode_time(now), pairing_code, encode_time(now), claimant),
            )
        return None if row is None else decode_row(PairingSession, dict(row))

    async def delete_expired_sessions(self, now: datetime) -> int:
        """Delete sessions with `expires_at <= now`; return how many (their codes stay
        issued)."""
        return await self._database.execute(
            "DELETE FROM provisioning_sessions WHERE expires_at <= ?", (encode_time(now),)
        )


async def _record_issued(statements: Statements, session: PairingSession) -> bool:
    """Remember the session's code as issued; False when it already was."""
    changed = await statements.execute(
        "INSERT INTO pairing_codes_issued (code, issued_at) VALUES (?, ?)"
        " ON CONFLICT (code) DO NOTHING",
        (session.pairing_code, encode_time(session.created_at)),
    )
    return changed == 1


async def _upsert(statements: Statements, session: PairingSession) -> None:
    await statements.execute(
        "INSERT INTO provisioning_sessions (pairing_code, device_id, device_ip, created_at,"
        " expires_at, claimed_by, claimed_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (pairing_code) DO UPDATE SET device_id = excluded.device_id,"
        " device_ip = excluded.device_ip, created_at = excluded.created_at,"
        " expires_at = excluded.expires_at, claimed_by = excluded.claimed_by,"
        " claimed_at = excluded.claimed_at",
        (
            session.pairing_code,
            session.device_id,
            session.device_ip,
            encode_time(session.created_at),
            encode_time(session.expires_at),
            session.claimed_by,
            encode_optional_time(session.claimed_at),
        ),
    )
