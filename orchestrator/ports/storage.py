"""Persistence ports. Each method is one atomic unit: it commits before it returns."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

import msgspec

from orchestrator.domain.allowlist import AllowlistEntry
from orchestrator.domain.apikey import ApiKeyRecord
from orchestrator.domain.attempt import Attempt
from orchestrator.domain.audit import AuditEntry
from orchestrator.domain.candidate import Candidate
from orchestrator.domain.events import Event
from orchestrator.domain.mac import Mac
from orchestrator.domain.pairing import DeviceRecord, PairingSession
from orchestrator.domain.session import Session
from orchestrator.domain.totp import TotpEnrollment


class StorageError(Exception):
    """The store failed (disk full, corrupt file, locked database). Maps to DATABASE_ERROR."""


class SessionRepository(Protocol):
    """Batch sessions, with the target Wi-Fi password stored sealed (encrypted) beside them."""

    async def create(
        self, session: Session, sealed_password: bytes, sealed_cloud: bytes | None = None
    ) -> None:
        """Insert a new session; its id must be unused. `sealed_cloud` holds the cloud
        registration secrets, encrypted like the password."""
        ...

    async def save(self, session: Session) -> None:
        """Overwrite an existing session's fields (the sealed password is kept)."""
        ...

    async def get(self, session_id: str) -> Session | None:
        """The session with this id, or None."""
        ...

    async def sealed_password(self, session_id: str) -> bytes | None:
        """The sealed target password of a session, or None for an unknown id."""
        ...

    async def sealed_cloud(self, session_id: str) -> bytes | None:
        """The sealed cloud registration secrets of a session, or None (none, or unknown id)."""
        ...

    async def list_unclosed(self) -> list[Session]:
        """Every session whose state is not `closed`, oldest first."""
        ...

    async def history(self, limit: int) -> list[Session]:
        """The most recently created sessions, newest first, at most `limit`."""
        ...

    async def delete_closed_before(self, cutoff: datetime) -> int:
        """Delete closed sessions last updated before `cutoff`, with their candidates;
        return how many sessions went."""
        ...


class CandidateRepository(Protocol):
    """Candidates, keyed by (session id, MAC)."""

    async def save(self, candidate: Candidate) -> None:
        """Insert or replace one candidate."""
        ...

    async def save_many(self, candidates: Sequence[Candidate]) -> None:
        """Insert or replace several candidates in one transaction."""
        ...

    async def list_for(self, session_id: str) -> list[Candidate]:
        """A session's candidates in discovery order (then MAC)."""
        ...


class AttemptRepository(Protocol):
    """Provisioning attempts (no secrets), newest per device first; deleted with their session."""

    async def save(self, attempt: Attempt) -> None:
        """Insert or replace one attempt (its candidate must exist)."""
        ...

    async def latest(self, session_id: str, mac: Mac) -> Attempt | None:
        """The device's newest attempt in the session, or None."""
        ...

    async def latest_for_session(self, session_id: str) -> builtins.list[Attempt]:
        """The newest attempt of every device of the session that has one, by MAC."""
        ...


class AllowlistRepository(Protocol):
    """Trusted MACs."""

    async def get(self, mac: Mac) -> AllowlistEntry | None:
        """The entry for `mac`, or None."""
        ...

    async def put(self, entry: AllowlistEntry) -> None:
        """Insert or replace an entry."""
        ...

    async def put_many(self, entries: Sequence[AllowlistEntry]) -> None:
        """Insert or replace several entries in one transaction."""
        ...

    async def list(self, *, available_only: bool = False) -> list[AllowlistEntry]:
        """Entries ordered by MAC; `available_only` keeps the unused ones."""
        ...

    async def remove(self, macs: Sequence[Mac]) -> builtins.list[Mac]:
        """Delete these entries in one transaction; return the MACs that existed."""
        ...

    async def clear(self) -> int:
        """Delete every entry; return how many there were."""
        ...


class ProvisioningRepository(Protocol):
    """Seed 000's IProvisioningRepository: device records and pair-by-code sessions.

    Every code ever stored counts as issued, for good: `issue_session` refuses it again, so a
    code is never reused, even after its session was purged.
    """

    async def save_device(self, device: DeviceRecord) -> None:
        """Insert or replace a device record."""
        ...

    async def find_device_by_id(self, device_id: str) -> DeviceRecord | None:
        """The device record, or None."""
        ...

    async def save_session(self, session: PairingSession) -> None:
        """Insert or replace a pairing session (keyed by its code); its code counts as issued."""
        ...

    async def issue_session(self, session: PairingSession) -> bool:
        """Store `session` if its code was never issued, replacing the device's earlier
        sessions; False, storing nothing, when the code was issued before."""
        ...

    async def find_session_by_code(self, pairing_code: str, now: datetime) -> PairingSession | None:
        """The session for this code only while it has not expired at `now` (claimed or not)."""
        ...

    async def find_live_session_for_device(
        self, device_id: str, now: datetime
    ) -> PairingSession | None:
        """The device's session that is neither expired at `now` nor claimed, or None."""
        ...

    async def claim_session(
        self, pairing_code: str, claimant: str, now: datetime
    ) -> PairingSession | None:
        """Mark this code's unexpired session claimed by `claimant`, atomically. Returns the
        claimed session to the first claimant (and to its repeats), None to anyone else and
        for an unknown or expired code: of concurrent claims by two claimants exactly one wins."""
        ...

    async def delete_expired_sessions(self, now: datetime) -> int:
        """Delete sessions expired at `now` (claimed or not); return how many. Their codes
        stay issued."""
        ...


class AuditQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Filters for paging through the audit log, newest first."""

    mac: Mac | None = None
    action: str | None = None
    since: datetime | None = None
    before_id: int | None = None
    limit: int = 100


class AuditLog(Protocol):
    """Append-only audit trail."""

    async def append(self, entry: AuditEntry) -> int:
        """Store `entry`; return its id (ids increase)."""
        ...

    async def page(self, query: AuditQuery) -> list[AuditEntry]:
        """Entries matching `query`, newest first, with their ids set."""
        ...


class StoredEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One event as kept in the log: its sequence number and encoded envelope."""

    seq: int
    session_id: str | None
    data: bytes


class EventLog(Protocol):
    """The retained event stream; SSE replays from it after a reconnect."""

    async def append(self, event: Event) -> int:
        """Store `event`; return its sequence number (strictly increasing)."""
        ...

    async def since(self, seq: int, limit: int = 10_000) -> list[StoredEvent]:
        """Events after `seq`, oldest first."""
        ...

    async def bounds(self) -> tuple[int, int] | None:
        """(oldest, newest) retained sequence numbers, or None when empty."""
        ...

    async def trim(self, keep_last: int) -> int:
        """Drop all but the newest `keep_last` events; return how many went."""
        ...


class ApiKeyRepository(Protocol):
    """API key records (hashes only)."""

    async def add(self, record: ApiKeyRecord) -> None:
        """Store a new key record; its id must be unused."""
        ...

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        """The record with this id, or None."""
        ...

    async def list(self) -> list[ApiKeyRecord]:
        """Every record, oldest first."""
        ...

    async def revoke(self, key_id: str, at: datetime) -> bool:
        """Mark a key revoked; False when no active key has this id."""
        ...


class Store(Protocol):
    """Every repository over one database; what the composition root hands out."""

    @property
    def sessions(self) -> SessionRepository:
        """Batch sessions."""
        ...

    @property
    def candidates(self) -> CandidateRepository:
        """Candidates."""
        ...

    @property
    def attempts(self) -> AttemptRepository:
        """Provisioning attempts."""
        ...

    @property
    def allowlist(self) -> AllowlistRepository:
        """The allowlist."""
        ...

    @property
    def provisioning(self) -> ProvisioningRepository:
        """Device records and pairing sessions."""
        ...

    @property
    def audit(self) -> AuditLog:
        """The audit log."""
        ...

    @property
    def events(self) -> EventLog:
        """The event log."""
        ...

    @property
    def api_keys(self) -> ApiKeyRepository:
        """API key records."""
        ...

    @property
    def totp(self) -> TotpRepository:
        """The TOTP step-up enrollment."""
        ...

    def atomic(self) -> AbstractAsyncContextManager[None]:
        """A unit of work: what the calling task writes inside the block, through any
        repository, is committed together when it ends, or not at all if it raises."""
        ...

    async def health(self) -> str:
        """`ok`, or a short description of what is wrong (never raises)."""
        ...


class TotpRepository(Protocol):
    """The appliance's one TOTP enrollment: a sealed seed and the last time step used."""

    async def enroll(self, sealed_seed: bytes, at: datetime) -> None:
        """Store a new seed, replacing any earlier one; no step of it has been used yet."""
        ...

    async def get(self) -> TotpEnrollment | None:
        """The enrollment, or None before the first `enroll`."""
        ...

    async def claim_step(self, step: int) -> bool:
        """Record `step` as used if it is newer than the last used step, atomically; True
        only for the one caller that moved it (False too when nothing is enrolled)."""
        ...
