"""The one SQLite connection: opening it, its pragmas, serialised access and transactions.

This module is where aiosqlite is driven and where every sqlite3 error becomes a StorageError.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aiosqlite  # noqa: TID251 - this module is the one place allowed to drive SQLite

from orchestrator.ports.storage import StorageError

logger = logging.getLogger(__name__)

Params = Sequence[Any]
Row = sqlite3.Row

MIN_SQLITE_VERSION = (3, 37, 0)
"""STRICT tables need 3.37; RETURNING (3.35) and the JSON functions come with it."""


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn sqlite3 errors raised inside the block into StorageError naming `what`."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StorageError(f"{what}: {type(exc).__name__}: {exc}") from exc
    except ValueError as exc:
        # aiosqlite reports a call on a closed connection as a bare ValueError.
        raise StorageError(f"{what}: {exc}") from exc


def _describe(sql: str) -> str:
    """The leading words of a statement, enough to say which one failed (never parameters)."""
    words = sql.split()
    return " ".join(words[:6])


class Statements:
    """Statement execution on the connection, errors translated. Unlocked: callers reach it
    through `Database.transaction()`, which holds the lock."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        """Every row of a query."""
        with translated(_describe(sql)):
            return list(await self._connection.execute_fetchall(sql, params))

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        """The first row of a query, or None."""
        rows = await self.fetch_all(sql, params)
        return rows[0] if rows else None

    async def control(self, sql: str) -> None:
        """Run a statement that answers nothing (BEGIN, COMMIT, ...)."""
        await self.run(sql)

    async def run(self, sql: str, params: Params = ()) -> None:
        """Run one statement whose row count nobody needs.

        Each call is a trip to the connection's thread, the dominant cost of a write (a
        queue hand-off and a wake-up each way); `execute` takes two, as its cursor must be
        closed there too. Hot writes (a candidate, an attempt) use this.
        """
        with translated(_describe(sql)):
            await self._connection.execute_fetchall(sql, params)

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; return how many rows it changed."""
        with translated(_describe(sql)):
            cursor = await self._connection.execute(sql, params)
            try:
                return cursor.rowcount
            finally:
                await cursor.close()

    async def execute_many(self, sql: str, rows: Iterable[Params]) -> int:
        """Run one statement per parameter row; return how many rows changed in all."""
        with translated(_describe(sql)):
            cursor = await self._connection.executemany(sql, rows)
            try:
                return cursor.rowcount
            finally:
                await cursor.close()

    async def insert(self, sql: str, params: Params = ()) -> int:
        """Run an INSERT; return the rowid it assigned."""
        with translated(_describe(sql)):
            row = await self._connection.execute_insert(sql, params)
        if row is None:
            raise StorageError(f"{_describe(sql)}: no rowid was assigned")
        rowid: int = row[0]
        return rowid


class Database:
    """Serialised access to one aiosqlite connection; build it with `open_database`.

    One connection serves every task, so a lock keeps one task's transaction from interleaving
    with another task's statements (and a read from seeing another task's uncommitted rows).
    """

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection
        self._statements = Statements(connection)
        self._lock = asyncio.Lock()
        self._closed = False
        self._owner: asyncio.Task[Any] | None = None
        """The task whose transaction is open: its statements join it, unlocked."""

    @asynccontextmanager
    async def _serialised(self) -> AsyncIterator[Statements]:
        if self._closed:
            raise StorageError("the database is closed")
        if self._owner is not None and self._owner is asyncio.current_task():
            yield self._statements
            return
        async with self._lock:
            yield self._statements

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        """Every row of a query."""
        async with self._serialised() as statements:
            return await statements.fetch_all(sql, params)

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        """The first row of a query, or None."""
        async with self._serialised() as statements:
            return await statements.fetch_one(sql, params)

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement in autocommit mode (SQLite makes it atomic and durable on its
        own); return how many rows it changed."""
        async with self._serialised() as statements:
            return await statements.execute(sql, params)

    async def run(self, sql: str, params: Params = ()) -> None:
        """Run one statement in autocommit mode, its row count unread (one thread trip)."""
        async with self._serialised() as statements:
            await statements.run(sql, params)

    async def insert(self, sql: str, params: Params = ()) -> int:
        """Run one INSERT in autocommit mode; return the rowid it assigned."""
        async with self._serialised() as statements:
            return await statements.insert(sql, params)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Statements]:
        """One write transaction: committed when the block ends, rolled back if it raises.

        Every statement the same task runs inside the block, through any repository, joins
        it: a unit of work (a candidate, its audit entry and its events) commits once, with
        one fsync instead of one each. A transaction opened inside another joins it too.
        Other tasks wait for the lock, as before.
        """
        task = asyncio.current_task()
        if self._owner is not None and self._owner is task:
            yield self._statements
            return
        async with self._serialised() as statements:
            # IMMEDIATE takes the write lock up front, so a second process waits in
            # busy_timeout at BEGIN instead of failing half-way through with SQLITE_BUSY.
            await statements.control("BEGIN IMMEDIATE")
            self._owner = task
            try:
                yield statements
                await statements.control("COMMIT")
            except BaseException:
                await self._rollback(statements)
                raise
            finally:
                self._owner = None

    async def _rollback(self, statements: Statements) -> None:
        # SQLite rolls back by itself after some errors (disk full, I/O); then ROLLBACK fails
        # with "no transaction is active", which must not hide the original error.
        try:
            await statements.control("ROLLBACK")
        except StorageError:
            logger.warning("rollback failed; SQLite had already ended the transaction")

    async def configure(self, *, busy_timeout_ms: int) -> None:
        """Set the per-connection pragmas; refuse a file that cannot use WAL."""
        async with self._serialised() as statements:
            # busy_timeout first: switching to WAL itself may wait for another process's lock.
            await statements.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            row = await statements.fetch_one("PRAGMA journal_mode = WAL")
            mode = str(row[0]) if row is not None else "unknown"
            if mode.lower() != "wal":
                raise StorageError(f"cannot use WAL journaling (journal_mode is {mode})")
            # FULL: with WAL, no committed row was lost over 30 kill -9 runs (field notes).
            await statements.execute("PRAGMA synchronous = FULL")
            await statements.execute("PRAGMA foreign_keys = ON")

    @property
    def is_closed(self) -> bool:
        """Whether `close` has run."""
        return self._closed

    async def close(self) -> None:
        """Close the connection and stop its worker thread (idempotent).

        Not locked: aiosqlite runs calls in order, so statements already queued finish first,
        and a cancelled caller cannot keep the thread alive (it would hang the process at exit).
        """
        if self._closed:
            return
        self._closed = True
        with translated("close"):
            await self._connection.close()


def _require_sqlite_version() -> None:
    if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
        wanted = ".".join(map(str, MIN_SQLITE_VERSION))
        raise StorageError(f"SQLite {sqlite3.sqlite_version} is too old; need {wanted} or newer")


@asynccontextmanager
async def open_database(
    path: str | Path, *, busy_timeout_ms: int = 5_000
) -> AsyncIterator[Database]:
    """Open (creating if needed) the database file at `path`, configured; closed on exit."""
    _require_sqlite_version()
    with translated(f"open {path}"):
        # isolation_level=None: we issue BEGIN/COMMIT ourselves. The sqlite3 module's implicit
        # transactions would otherwise open one before any DML and hold it across awaits.
        connection = await aiosqlite.connect(path, isolation_level=None)
    connection.row_factory = sqlite3.Row
    database = Database(connection)
    try:
        await database.configure(busy_timeout_ms=busy_timeout_ms)
        yield database
    finally:
        await database.close()
