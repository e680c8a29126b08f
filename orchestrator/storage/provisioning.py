"""Seed 000's provisioning repository in SQLite: `devices` and `provisioning_sessions`."""

from __future__ import annotations

from datetime import datetime

from orchestrator.domain.pairing import DeviceRecord, PairingSession
from orchestrator.storage.codec import decode_row, encode_time
from orchestrator.storage.database import Database


class SqliteProvisioningRepository:
    """ProvisioningRepository over the `devices` and `provisioning_sessions` tables.

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
        """Insert or replace a pairing session (keyed by its code)."""
        await self._database.execute(
            "INSERT INTO provisioning_sessions (pairing_code, device_id, device_ip, created_at,"
            " expires_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (pairing_code) DO UPDATE SET device_id = excluded.device_id,"
            " device_ip = excluded.device_ip, created_at = excluded.created_at,"
            " expires_at = excluded.expires_at",
            (
                session.pairing_code,
                session.device_id,
                session.device_ip,
                encode_time(session.created_at),
                encode_time(session.expires_at),
            ),
        )

    async def find_session_by_code(self, pairing_code: str, now: datetime) -> PairingSession | None:
        """The session for this code only while `now < expires_at`."""
        row = await self._database.fetch_one(
            "SELECT pairing_code, device_id, device_ip, created_at, expires_at"
            " FROM provisioning_sessions WHERE pairing_code = ? AND expires_at > ?",
            (pairing_code, encode_time(now)),
        )
        return None if row is None else decode_row(PairingSession, dict(row))

    async def delete_expired_sessions(self, now: datetime) -> int:
        """Delete sessions with `expires_at <= now`; return how many."""
        return await self._database.execute(
            "DELETE FROM provisioning_sessions WHERE expires_at <= ?", (encode_time(now),)
        )
