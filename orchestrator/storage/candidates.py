"""Candidates in SQLite, keyed by (session id, MAC)."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from orchestrator.domain.candidate import Candidate
from orchestrator.storage.codec import decode_json, decode_row, encode_optional_time, encode_time
from orchestrator.storage.database import Database, Params, Row

_UPSERT = (
    "INSERT INTO candidates (session_id, mac, ip, state, rssi, firmware_version, discovered_at,"
    " updated_at, retry_count, provisioned_at, verified_at, failure_reason, failure_message,"
    " failure_code, cloud) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (session_id, mac) DO UPDATE SET ip = excluded.ip, state = excluded.state,"
    " rssi = excluded.rssi, firmware_version = excluded.firmware_version,"
    " discovered_at = excluded.discovered_at, updated_at = excluded.updated_at,"
    " retry_count = excluded.retry_count, provisioned_at = excluded.provisioned_at,"
    " verified_at = excluded.verified_at, failure_reason = excluded.failure_reason,"
    " failure_message = excluded.failure_message, failure_code = excluded.failure_code,"
    " cloud = excluded.cloud"
)


def _fields(candidate: Candidate) -> Params:
    failure = candidate.failure
    return (
        candidate.session_id,
        candidate.mac,
        candidate.ip,
        candidate.state.value,
        candidate.rssi,
        candidate.firmware_version,
        encode_time(candidate.discovered_at),
        encode_time(candidate.updated_at),
        candidate.retry_count,
        encode_optional_time(candidate.provisioned_at),
        encode_optional_time(candidate.verified_at),
        None if failure is None else failure.reason,
        None if failure is None else failure.message,
        None if failure is None or failure.code is None else failure.code.value,
        None if candidate.cloud is None else msgspec.json.encode(candidate.cloud).decode(),
    )


def _candidate(row: Row) -> Candidate:
    fields = dict(row)
    reason = fields.pop("failure_reason")
    message = fields.pop("failure_message")
    code = fields.pop("failure_code")
    if reason is not None:
        fields["failure"] = {"reason": reason, "message": message, "code": code}
    cloud = fields.pop("cloud")
    if cloud is not None:
        fields["cloud"] = decode_json(cloud)
    return decode_row(Candidate, fields)


class SqliteCandidateRepository:
    """CandidateRepository over the `candidates` table."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def save(self, candidate: Candidate) -> None:
        """Insert or replace one candidate (its session must exist)."""
        await self._database.run(_UPSERT, _fields(candidate))

    async def save_many(self, candidates: Sequence[Candidate]) -> None:
        """Insert or replace several candidates in one transaction."""
        rows = [_fields(candidate) for candidate in candidates]
        if not rows:
            return
        async with self._database.transaction() as statements:
            await statements.execute_many(_UPSERT, rows)

    async def list_for(self, session_id: str) -> list[Candidate]:
        """A session's candidates in discovery order (then MAC)."""
        rows = await self._database.fetch_all(
            "SELECT session_id, mac, ip, state, rssi, firmware_version, discovered_at,"
            " updated_at, retry_count, provisioned_at, verified_at, failure_reason,"
            " failure_message, failure_code, cloud FROM candidates WHERE session_id = ?"
            " ORDER BY discovered_at, mac",
            (session_id,),
        )
        return [_candidate(row) for row in rows]
