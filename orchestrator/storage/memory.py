"""The in-memory Store: the fake of the storage port, held to the SQLite store's contract suite.

Plain dicts and lists. Timestamps are normalised to UTC and naive ones refused, as SQLite does,
so both stores hand back equal values; unknown session ids on candidates fail as a foreign key
would.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from itertools import islice
from typing import Final, TypeVar

import msgspec

from orchestrator.domain.allowlist import AllowlistEntry
from orchestrator.domain.apikey import ApiKeyRecord
from orchestrator.domain.attempt import Attempt
from orchestrator.domain.audit import AuditEntry
from orchestrator.domain.candidate import Candidate
from orchestrator.domain.events import Event
from orchestrator.domain.mac import Mac
from orchestrator.domain.pairing import DeviceRecord, PairingSession
from orchestrator.domain.session import Session, SessionState
from orchestrator.domain.totp import TotpEnrollment
from orchestrator.ports.storage import AuditQuery, StorageError, StoredEvent
from orchestrator.storage.codec import to_utc

S = TypeVar("S", bound=msgspec.Struct)

_ENCODER = msgspec.json.Encoder()


def _normalised(value: S) -> S:
    """`value` with every timestamp field in UTC (ValueError for a naive one)."""
    changes = {
        name: to_utc(field)
        for name, field in msgspec.structs.asdict(value).items()
        if isinstance(field, datetime)
    }
    return msgspec.structs.replace(value, **changes) if changes else value


def _require_count(value: int, name: str) -> None:
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")


def _by_creation(session: Session) -> tuple[datetime, str]:
    return session.created_at, session.id


class MemorySessionRepository:
    """SessionRepository in a dict; deleting a session deletes its candidates and attempts."""

    def __init__(
        self,
        candidates: dict[tuple[str, Mac], Candidate],
        attempts: dict[tuple[str, Mac, int], Attempt],
    ) -> None:
        self._sessions: dict[str, Session] = {}
        self._passwords: dict[str, bytes] = {}
        self._clouds: dict[str, bytes] = {}
        self._candidates = candidates
        self._attempts = attempts

    def __contains__(self, session_id: str) -> bool:
        return session_id in self._sessions

    async def create(
        self, session: Session, sealed_password: bytes, sealed_cloud: bytes | None = None
    ) -> None:
        """Insert a new session; its id must be unused."""
        stored = _normalised(session)
        if session.id in self._sessions:
            raise StorageError(f"session {session.id} already exists")
        self._sessions[session.id] = stored
        self._passwords[session.id] = bytes(sealed_password)
        if sealed_cloud is not None:
            self._clouds[session.id] = bytes(sealed_cloud)

    async def save(self, session: Session) -> None:
        """Overwrite an existing session's fields (the sealed password is kept)."""
        stored = _normalised(session)
        if session.id not in self._sessions:
            raise StorageError(f"cannot save session {session.id}: it does not exist")
        self._sessions[session.id] = stored

    async def get(self, session_id: str) -> Session | None:
        """The session with this id, or None."""
        return self._sessions.get(session_id)

    async def sealed_password(self, session_id: str) -> bytes | None:
        """The sealed target password of a session, or None for an unknown id."""
        return self._passwords.get(session_id)

    async def sealed_cloud(self, session_id: str) -> bytes | None:
        """The sealed cloud registration secrets of a session, or None."""
        return self._clouds.get(session_id)

    async def list_unclosed(self) -> list[Session]:
        """Every session whose state is not `closed`, oldest first."""
        unclosed = [s for s in self._sessions.values() if s.state is not SessionState.CLOSED]
        return sorted(unclosed, key=_by_creation)

    async def history(self, limit: int) -> list[Session]:
        """The most recently created sessions, newest first, at most `limit`."""
        _require_count(limit, "limit")
        return sorted(self._sessions.values(), key=_by_creation, reverse=True)[:limit]

    async def delete_closed_before(self, cutoff: datetime) -> int:
        """Delete closed sessions last updated before `cutoff`, with their candidates."""
        cutoff = to_utc(cutoff)
        doomed = {
            s.id
            for s in self._sessions.values()
            if s.state is SessionState.CLOSED and s.updated_at < cutoff
        }
        for session_id in doomed:
            del self._sessions[session_id]
            del self._passwords[session_id]
            self._clouds.pop(session_id, None)
        for key in [key for key in self._candidates if key[0] in doomed]:
            del self._candidates[key]
        for number_key in [key for key in self._attempts if key[0] in doomed]:
            del self._attempts[number_key]
        return len(doomed)


class MemoryCandidateRepository:
    """CandidateRepository in a dict keyed by (session id, MAC)."""

    def __init__(
        self, candidates: dict[tuple[str, Mac], Candidate], sessions: MemorySessionRepository
    ) -> None:
        self._candidates = candidates
        self._sessions = sessions

    def _checked(self, candidate: Candidate) -> Candidate:
        if candidate.session_id not in self._sessions:
            raise StorageError(f"candidate {candidate.mac}: no session {candidate.session_id}")
        return _normalised(candidate)

    async def save(self, candidate: Candidate) -> None:
        """Insert or replace one candidate (its session must exist)."""
        await self.save_many([candidate])

    async def save_many(self, candidates: Sequence[Candidate]) -> None:
        """Insert or replace several candidates, all or none."""
        checked = [self._checked(candidate) for candidate in candidates]
        for candidate in checked:
            self._candidates[candidate.session_id, candidate.mac] = candidate

    async def list_for(self, session_id: str) -> list[Candidate]:
        """A session's candidates in discovery order (then MAC)."""
        mine = [c for (owner, _), c in self._candidates.items() if owner == session_id]
        return sorted(mine, key=lambda c: (c.discovered_at, c.mac))


class MemoryAttemptRepository:
    """AttemptRepository in a dict keyed by (session id, MAC, number)."""

    def __init__(
        self,
        attempts: dict[tuple[str, Mac, int], Attempt],
        candidates: dict[tuple[str, Mac], Candidate],
    ) -> None:
        self._attempts = attempts
        self._candidates = candidates

    async def save(self, attempt: Attempt) -> None:
        """Insert or replace one attempt (its candidate must exist)."""
        if (attempt.session_id, attempt.mac) not in self._candidates:
            raise StorageError(f"attempt of {attempt.mac}: no such candidate")
        key = (attempt.session_id, attempt.mac, attempt.number)
        if any(other.nonce == attempt.nonce and k != key for k, other in self._attempts.items()):
            raise StorageError(f"attempt of {attempt.mac}: nonce already used")
        self._attempts[key] = _normalised(attempt)

    async def latest(self, session_id: str, mac: Mac) -> Attempt | None:
        """The device's newest attempt in the session, or None."""
        mine = [a for (s, m, _), a in self._attempts.items() if (s, m) == (session_id, mac)]
        return max(mine, key=lambda a: a.number, default=None)

    async def latest_for_session(self, session_id: str) -> builtins.list[Attempt]:
        """The newest attempt of every device of the session that has one, by MAC."""
        newest: dict[Mac, Attempt] = {}
        for (owner, mac, _), attempt in self._attempts.items():
            if owner == session_id and (mac not in newest or newest[mac].number < attempt.number):
                newest[mac] = attempt
        return [newest[mac] for mac in sorted(newest)]


class MemoryAllowlistRepository:
    """AllowlistRepository in a dict keyed by MAC."""

    def __init__(self) -> None:
        self._entries: dict[Mac, AllowlistEntry] = {}

    async def get(self, mac: Mac) -> AllowlistEntry | None:
        """The entry for `mac`, or None."""
        return self._entries.get(mac)

    async def put(self, entry: AllowlistEntry) -> None:
        """Insert or replace an entry."""
        await self.put_many([entry])

    async def put_many(self, entries: Sequence[AllowlistEntry]) -> None:
        """Insert or replace several entries, all or none."""
        checked = [_normalised(entry) for entry in entries]
        self._entries.update((entry.mac, entry) for entry in checked)

    async def list(self, *, available_only: bool = False) -> builtins.list[AllowlistEntry]:
        """Entries ordered by MAC; `available_only` keeps the unused ones."""
        entries = sorted(self._entries.values(), key=lambda entry: entry.mac)
        return [e for e in entries if not available_only or e.used_at is None]

    async def remove(self, macs: Sequence[Mac]) -> builtins.list[Mac]:
        """Delete these entries; return the MACs that existed, in the order asked for."""
        existing = [mac for mac in dict.fromkeys(macs) if mac in self._entries]
        for mac in existing:
            del self._entries[mac]
        return existing

    async def clear(self) -> int:
        """Delete every entry; return how many there were."""
        count = len(self._entries)
        self._entries.clear()
        return count


class MemoryProvisioningRepository:
    """ProvisioningRepository in dicts; a code is valid while `now < expires_at`. No method
    awaits, so each one is atomic, as the SQLite store's transactions are."""

    def __init__(self) -> None:
        self._devices: dict[str, DeviceRecord] = {}
        self._pairings: dict[str, PairingSession] = {}
        self._issued: set[str] = set()

    async def save_device(self, device: DeviceRecord) -> None:
        """Insert or replace a device record."""
        self._devices[device.device_id] = _normalised(device)

    async def find_device_by_id(self, device_id: str) -> DeviceRecord | None:
        """The device record, or None."""
        return self._devices.get(device_id)

    async def save_session(self, session: PairingSession) -> None:
        """Insert or replace a pairing session (keyed by its code); its code counts as issued."""
        stored = _normalised(session)
        self._issued.add(stored.pairing_code)
        self._pairings[stored.pairing_code] = stored

    async def issue_session(self, session: PairingSession) -> bool:
        """Store `session` if its code was never issued, replacing the device's earlier
        sessions; False, storing nothing, when the code was issued before."""
        stored = _normalised(session)
        if stored.pairing_code in self._issued:
            return False
        self._issued.add(stored.pairing_code)
        for code in [c for c, s in self._pairings.items() if s.device_id == stored.device_id]:
            del self._pairings[code]
        self._pairings[stored.pairing_code] = stored
        return True

    async def find_session_by_code(self, pairing_code: str, now: datetime) -> PairingSession | None:
        """The session for this code only while `now < expires_at` (claimed or not)."""
        now = to_utc(now)
        session = self._pairings.get(pairing_code)
        return None if session is None or session.is_expired(now) else session

    async def find_live_session_for_device(
        self, device_id: str, now: datetime
    ) -> PairingSession | None:
        """The device's unexpired, unclaimed session (the newest, should there be several)."""
        now = to_utc(now)
        live = [s for s in self._pairings.values() if s.device_id == device_id and s.is_live(now)]
        return max(live, key=lambda s: s.created_at, default=None)

    async def claim_session(
        self, pairing_code: str, claimant: str, now: datetime
    ) -> PairingSession | None:
        """Claim this code's unexpired session for `claimant`: the first claim and repeats by
        the same claimant get the session, anyone else None."""
        now = to_utc(now)
        session = self._pairings.get(pairing_code)
        if session is None or not session.claimable_by(claimant, now):
            return None
        claimed = session.claimed(claimant, now)
        self._pairings[pairing_code] = claimed
        return claimed

    async def delete_expired_sessions(self, now: datetime) -> int:
        """Delete sessions with `expires_at <= now`; return how many (their codes stay
        issued)."""
        now = to_utc(now)
        expired = [code for code, s in self._pairings.items() if s.is_expired(now)]
        for code in expired:
            del self._pairings[code]
        return len(expired)


class MemoryAuditLog:
    """AuditLog in a list, ids from 1 upwards."""

    def __init__(self) -> None:
        self._entries: list[AuditEntry] = []

    async def append(self, entry: AuditEntry) -> int:
        """Store `entry` (its `id` is ignored); return the id assigned."""
        entry_id = len(self._entries) + 1
        self._entries.append(msgspec.structs.replace(_normalised(entry), id=entry_id))
        return entry_id

    async def page(self, query: AuditQuery) -> list[AuditEntry]:
        """Entries matching `query`, newest (highest id) first, with their ids set."""
        _require_count(query.limit, "limit")
        since = None if query.since is None else to_utc(query.since)
        newest_first = zip(range(len(self._entries), 0, -1), reversed(self._entries), strict=True)
        matches = (
            entry
            for entry_id, entry in newest_first
            if (query.before_id is None or entry_id < query.before_id)
            and (query.mac is None or entry.mac == query.mac)
            and (query.action is None or entry.action == query.action)
            and (since is None or entry.at >= since)
        )
        return list(islice(matches, query.limit))


class MemoryEventLog:
    """EventLog in a list; sequence numbers come from a counter that trim never rewinds."""

    def __init__(self) -> None:
        self._events: list[StoredEvent] = []
        self._last_seq = 0

    async def append(self, event: Event) -> int:
        """Store `event`; return its sequence number."""
        self._last_seq += 1
        self._events.append(
            StoredEvent(
                seq=self._last_seq, session_id=event.session_id, data=_ENCODER.encode(event)
            )
        )
        return self._last_seq

    async def since(self, seq: int, limit: int = 10_000) -> list[StoredEvent]:
        """Events after `seq`, oldest first, at most `limit`."""
        _require_count(limit, "limit")
        return [event for event in self._events if event.seq > seq][:limit]

    async def bounds(self) -> tuple[int, int] | None:
        """(oldest, newest) retained sequence numbers, or None when empty."""
        if not self._events:
            return None
        return self._events[0].seq, self._events[-1].seq

    async def trim(self, keep_last: int) -> int:
        """Drop all but the newest `keep_last` events; return how many went."""
        _require_count(keep_last, "keep_last")
        gone = max(len(self._events) - keep_last, 0)
        del self._events[:gone]
        return gone


class MemoryApiKeyRepository:
    """ApiKeyRepository in a dict keyed by key id."""

    def __init__(self) -> None:
        self._records: dict[str, ApiKeyRecord] = {}

    async def add(self, record: ApiKeyRecord) -> None:
        """Store a new key record; its id must be unused."""
        stored = _normalised(record)
        if record.id in self._records:
            raise StorageError(f"API key {record.id} already exists")
        self._records[record.id] = stored

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        """The record with this id, or None."""
        return self._records.get(key_id)

    async def list(self) -> builtins.list[ApiKeyRecord]:
        """Every record, oldest first."""
        return sorted(self._records.values(), key=lambda record: (record.created_at, record.id))

    async def revoke(self, key_id: str, at: datetime) -> bool:
        """Mark a key revoked; False when no active key has this id."""
        at = to_utc(at)
        record = self._records.get(key_id)
        if record is None or not record.is_active:
            return False
        self._records[key_id] = msgspec.structs.replace(record, revoked_at=at)
        return True


class MemoryTotpRepository:
    """TotpRepository in one attribute; `claim_step` never awaits, so it is atomic."""

    def __init__(self) -> None:
        self._enrollment: TotpEnrollment | None = None

    async def enroll(self, sealed_seed: bytes, at: datetime) -> None:
        """Store a new seed, replacing any earlier one; no step of it has been used yet."""
        self._enrollment = TotpEnrollment(sealed_seed=bytes(sealed_seed), enrolled_at=to_utc(at))

    async def get(self) -> TotpEnrollment | None:
        """The enrollment, or None before the first `enroll`."""
        return self._enrollment

    async def claim_step(self, step: int) -> bool:
        """Record `step` as used if it is newer than the last used step."""
        enrollment = self._enrollment
        if enrollment is None or enrollment.last_used_step >= step:
            return False
        self._enrollment = msgspec.structs.replace(enrollment, last_used_step=step)
        return True


class MemoryStore:
    """The Store port in memory, for tests and demos; nothing to open or close."""

    def __init__(self) -> None:
        candidates: dict[tuple[str, Mac], Candidate] = {}
        attempts: dict[tuple[str, Mac, int], Attempt] = {}
        self.sessions: Final = MemorySessionRepository(candidates, attempts)
        self.candidates: Final = MemoryCandidateRepository(candidates, self.sessions)
        self.attempts: Final = MemoryAttemptRepository(attempts, candidates)
        self.allowlist: Final = MemoryAllowlistRepository()
        self.provisioning: Final = MemoryProvisioningRepository()
        self.audit: Final = MemoryAuditLog()
        self.events: Final = MemoryEventLog()
        self.api_keys: Final = MemoryApiKeyRepository()
        self.totp: Final = MemoryTotpRepository()

    @asynccontextmanager
    async def atomic(self) -> AsyncIterator[None]:
        """Nothing to group: every write is applied at once (and none can fail half-way)."""
        yield

    async def health(self) -> str:
        """Always `ok`: memory does not fail."""
        return "ok"
