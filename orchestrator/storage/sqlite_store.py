"""The SQLite Store: every repository over one migrated database, and the context manager
that owns its connection."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

from orchestrator.ports.storage import StorageError
from orchestrator.storage.allowlist import SqliteAllowlistRepository
from orchestrator.storage.api_keys import SqliteApiKeyRepository
from orchestrator.storage.attempts import SqliteAttemptRepository
from orchestrator.storage.audit import SqliteAuditLog
from orchestrator.storage.candidates import SqliteCandidateRepository
from orchestrator.storage.database import Database, open_database
from orchestrator.storage.events import SqliteEventLog
from orchestrator.storage.provisioning import SqliteProvisioningRepository
from orchestrator.storage.schema import Migration, load_migrations, migrate
from orchestrator.storage.sessions import SqliteSessionRepository
from orchestrator.storage.totp import SqliteTotpRepository


class SqliteStore:
    """The Store port over one SQLite database. It has no close: `open_sqlite_store` owns
    the connection, so borrowers cannot end it."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self.sessions: Final = SqliteSessionRepository(database)
        self.candidates: Final = SqliteCandidateRepository(database)
        self.attempts: Final = SqliteAttemptRepository(database)
        self.allowlist: Final = SqliteAllowlistRepository(database)
        self.provisioning: Final = SqliteProvisioningRepository(database)
        self.audit: Final = SqliteAuditLog(database)
        self.events: Final = SqliteEventLog(database)
        self.api_keys: Final = SqliteApiKeyRepository(database)
        self.totp: Final = SqliteTotpRepository(database)

    @asynccontextmanager
    async def atomic(self) -> AsyncIterator[None]:
        """A unit of work: one transaction for whatever this task writes in the block."""
        async with self._database.transaction():
            yield

    async def health(self) -> str:
        """`ok`, or a short description of what is wrong (never raises)."""
        if self._database.is_closed:
            return "database is closed"
        try:
            await self._database.fetch_one("SELECT count(*) FROM sqlite_schema")
        except StorageError as exc:
            return f"database unavailable: {exc}"
        return "ok"


@asynccontextmanager
async def open_sqlite_store(
    path: str | Path,
    *,
    migrations: Sequence[Migration] | None = None,
    busy_timeout_ms: int = 5_000,
) -> AsyncIterator[SqliteStore]:
    """Open the database at `path`, bring its schema up to date and yield the store; the
    connection is closed on exit, whatever happens.

    `migrations` defaults to the ones shipped with the package (tests pass their own).
    """
    steps = load_migrations() if migrations is None else migrations
    async with open_database(path, busy_timeout_ms=busy_timeout_ms) as database:
        await migrate(database, steps)
        yield SqliteStore(database)
