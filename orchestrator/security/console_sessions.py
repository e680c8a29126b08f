"""Console sign-in: an API key exchanged once for an HttpOnly session cookie.

Browsers' EventSource cannot send headers, so the console's stream authenticates with this
cookie. Sessions live in memory only (a restart signs everyone out) and are stored as hashes,
so a memory dump does not reveal a usable cookie.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

COOKIE_NAME = "orchestrator_session"


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """Who a cookie belongs to, and until when."""

    key_id: str
    expires_at: datetime


class ConsoleSessions:
    """Issues, checks and ends console sessions."""

    def __init__(self, clock: Callable[[], datetime], ttl_s: int = 12 * 3600) -> None:
        self._clock = clock
        self._ttl = timedelta(seconds=ttl_s)
        self._sessions: dict[str, ConsoleSession] = {}

    def issue(self, key_id: str) -> tuple[str, ConsoleSession]:
        """A new cookie value for the holder of API key `key_id`."""
        token = secrets.token_urlsafe(32)
        session = ConsoleSession(key_id=key_id, expires_at=self._clock() + self._ttl)
        self._forget_expired()
        self._sessions[_digest(token)] = session
        return token, session

    def check(self, token: str) -> ConsoleSession | None:
        """The live session behind `token`, or None."""
        session = self._sessions.get(_digest(token))
        if session is None or session.expires_at <= self._clock():
            return None
        return session

    def end(self, token: str) -> None:
        """Sign out."""
        self._sessions.pop(_digest(token), None)

    def _forget_expired(self) -> None:
        now = self._clock()
        for digest in [d for d, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[digest]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
