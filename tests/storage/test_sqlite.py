"""What only the SQLite store has: pragmas, migrations, durability, triggers, error mapping."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestrator.domain.session import SessionState
from orchestrator.ports.storage import StorageError
from orchestrator.storage import Migration, load_migrations, open_sqlite_store
from orchestrator.storage.database import Database, open_database
from orchestrator.storage.schema import migrate, schema_version
from tests.storage.samples import (
    T0,
    at,
    make_audit,
    make_candidate,
    make_entry,
    make_event,
    make_session,
)

LATEST = len(load_migrations())
BROKEN = Migration.from_sql(
    LATEST + 1,
    "broken",
    "CREATE TABLE half_done (x INTEGER);\nINSERT INTO no_such_table VALUES (1);",
)

INSERT_KEY = "INSERT INTO api_keys VALUES ('k', 'n', 'h', 't', NULL)"


def raw_query(path: Path, sql: str) -> list[tuple[object, ...]]:
    """Read the file with plain sqlite3, as another process would."""
    connection = sqlite3.connect(path)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


@pytest.fixture
async def database(db_path: Path) -> AsyncIterator[Database]:
    """A migrated database, below the repositories."""
    async with open_database(db_path) as opened:
        await migrate(opened, load_migrations())
        yield opened


def user_version(path: Path) -> int:
    """The file's PRAGMA user_version."""
    version = raw_query(path, "PRAGMA user_version")[0][0]
    assert isinstance(version, int)
    return version


async def test_pragmas_are_in_effect(db_path: Path) -> None:
    async with open_database(db_path, busy_timeout_ms=1234) as database:
        pragmas = {}
        for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout"):
            row = await database.fetch_one(f"PRAGMA {name}")
            assert row is not None
            pragmas[name] = row[0]
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 2,  # FULL
        "foreign_keys": 1,
        "busy_timeout": 1234,
    }
    assert raw_query(db_path, "PRAGMA journal_mode") == [("wal",)]


async def test_a_new_database_is_migrated_to_the_latest_version(db_path: Path) -> None:
    async with open_sqlite_store(db_path):
        pass
    assert user_version(db_path) == LATEST >= 1
    tables = {row[0] for row in raw_query(db_path, "SELECT name FROM sqlite_schema")}
    assert {"sessions", "candidates", "allowlist", "devices", "provisioning_sessions"} <= tables
    assert {"audit_log", "events", "api_keys"} <= tables


async def test_reopening_an_up_to_date_database_applies_nothing(db_path: Path) -> None:
    async with open_sqlite_store(db_path):
        pass
    async with open_database(db_path) as database:
        assert await migrate(database, load_migrations()) == []
        assert await schema_version(database) == LATEST


async def test_migrations_apply_in_order_from_any_version(db_path: Path) -> None:
    extra = Migration.from_sql(LATEST + 1, "extra", "CREATE TABLE extra (x INTEGER NOT NULL);")
    async with open_database(db_path) as database:
        assert await migrate(database, load_migrations()) == list(range(1, LATEST + 1))
        assert await migrate(database, [*load_migrations(), extra]) == [LATEST + 1]
        assert await schema_version(database) == LATEST + 1


async def test_a_failing_migration_is_rolled_back(db_path: Path) -> None:
    async with open_sqlite_store(db_path):
        pass
    with pytest.raises(StorageError, match="broken failed and was rolled back") as caught:
        async with open_sqlite_store(db_path, migrations=[*load_migrations(), BROKEN]):
            pytest.fail("the store must not open")
    assert isinstance(caught.value.__cause__, StorageError)
    assert isinstance(caught.value.__cause__.__cause__, sqlite3.OperationalError)
    assert user_version(db_path) == LATEST
    assert raw_query(db_path, "SELECT name FROM sqlite_schema WHERE name = 'half_done'") == []


async def test_a_failing_first_migration_leaves_an_empty_file(db_path: Path) -> None:
    broken_first = Migration.from_sql(1, "broken", BROKEN.statements[0] + BROKEN.statements[1])
    with pytest.raises(StorageError, match="rolled back"):
        async with open_sqlite_store(db_path, migrations=[broken_first]):
            pytest.fail("the store must not open")
    assert user_version(db_path) == 0
    assert raw_query(db_path, "SELECT name FROM sqlite_schema") == []


async def test_a_newer_database_is_refused(db_path: Path) -> None:
    extra = Migration.from_sql(LATEST + 1, "extra", "CREATE TABLE extra (x INTEGER);")
    async with open_sqlite_store(db_path, migrations=[*load_migrations(), extra]):
        pass
    with pytest.raises(StorageError, match=f"version {LATEST + 1} is newer"):
        async with open_sqlite_store(db_path):
            pytest.fail("the store must not open")
    assert user_version(db_path) == LATEST + 1


async def test_data_survives_close_and_reopen(db_path: Path) -> None:
    async with open_sqlite_store(db_path) as store:
        await store.sessions.create(make_session(), b"sealed")
        await store.candidates.save(make_candidate())
        await store.allowlist.put(make_entry(1))
        seq = await store.events.append(make_event(1))
    async with open_sqlite_store(db_path) as store:
        assert await store.sessions.get("sess_1") == make_session()
        assert await store.candidates.list_for("sess_1") == [make_candidate()]
        assert await store.allowlist.get(make_entry(1).mac) == make_entry(1)
        assert await store.events.bounds() == (seq, seq)


async def test_audit_rows_cannot_be_updated_or_deleted(db_path: Path) -> None:
    async with open_sqlite_store(db_path) as store:
        entry_id = await store.audit.append(make_audit())
    async with open_database(db_path) as database:
        with pytest.raises(StorageError, match="append-only") as caught:
            await database.execute(
                "UPDATE audit_log SET actor = 'forger' WHERE id = ?", (entry_id,)
            )
        assert isinstance(caught.value.__cause__, sqlite3.IntegrityError)
        with pytest.raises(StorageError, match="append-only"):
            await database.execute("DELETE FROM audit_log")
    # The triggers live in the file, so any other connection is refused too.
    connection = sqlite3.connect(db_path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            connection.execute("DELETE FROM audit_log")
    finally:
        connection.close()
    assert raw_query(db_path, "SELECT actor FROM audit_log") == [("key_1",)]


async def test_sealed_password_is_stored_as_opaque_bytes(db_path: Path) -> None:
    sealed = bytes(range(256))
    async with open_sqlite_store(db_path) as store:
        await store.sessions.create(make_session(), sealed)
        assert await store.sessions.sealed_password("sess_1") == sealed
    assert raw_query(db_path, "SELECT typeof(sealed_password), sealed_password FROM sessions") == [
        ("blob", sealed)
    ]


async def test_timestamps_are_fixed_width_utc_text(db_path: Path) -> None:
    async with open_sqlite_store(db_path) as store:
        await store.sessions.create(make_session(created_at=T0.replace(microsecond=0)), b"s")
    assert raw_query(db_path, "SELECT created_at FROM sessions") == [
        ("2025-01-02T03:04:05.000000Z",)
    ]


async def test_a_corrupt_row_is_a_storage_error(db_path: Path) -> None:
    async with open_sqlite_store(db_path) as store:
        await store.sessions.create(make_session(), b"s")
        connection = sqlite3.connect(db_path)
        try:
            with connection:
                connection.execute("UPDATE sessions SET state = 'exploded'")
        finally:
            connection.close()
        with pytest.raises(StorageError, match="stored Session does not decode"):
            await store.sessions.get("sess_1")


async def test_a_failed_transaction_leaves_nothing_behind(database: Database) -> None:
    async def insert_then_fail() -> None:
        async with database.transaction() as statements:
            await statements.execute(INSERT_KEY)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await insert_then_fail()
    assert await database.fetch_all("SELECT id FROM api_keys") == []
    # The connection is usable again: no transaction was left open.
    async with database.transaction() as statements:
        await statements.execute(INSERT_KEY)
    assert len(await database.fetch_all("SELECT id FROM api_keys")) == 1


async def test_a_cancelled_transaction_is_rolled_back(database: Database) -> None:
    entered = asyncio.Event()
    never = asyncio.Event()

    async def stuck_in_transaction() -> None:
        async with database.transaction() as statements:
            await statements.execute(INSERT_KEY)
            entered.set()
            await never.wait()

    task = asyncio.create_task(stuck_in_transaction())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await database.fetch_all("SELECT id FROM api_keys") == []
    assert await database.execute(INSERT_KEY) == 1


async def test_sqlite_errors_become_storage_errors_with_their_cause(db_path: Path) -> None:
    async with open_sqlite_store(db_path) as store:
        await store.sessions.create(make_session(), b"s")
        with pytest.raises(StorageError) as caught:
            await store.sessions.create(make_session(), b"s")
    assert isinstance(caught.value.__cause__, sqlite3.IntegrityError)


async def test_a_closed_store_reports_and_refuses(db_path: Path) -> None:
    async with open_sqlite_store(db_path) as store:
        pass
    assert await store.health() == "database is closed"
    with pytest.raises(StorageError, match="closed"):
        await store.sessions.get("sess_1")


async def test_the_connection_closes_when_the_body_raises(db_path: Path) -> None:
    # The autouse fixture fails this test if the worker thread outlives it.
    async def write_then_fail() -> None:
        async with open_sqlite_store(db_path) as store:
            await store.sessions.create(
                make_session(state=SessionState.CLOSED, updated_at=at(1)), b"s"
            )
            raise RuntimeError("body")

    with pytest.raises(RuntimeError, match="body"):
        await write_then_fail()
    async with open_sqlite_store(db_path) as store:
        assert await store.sessions.delete_closed_before(at(2)) == 1


async def test_an_unopenable_path_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="open"):
        async with open_sqlite_store(tmp_path / "missing" / "dir" / "x.db"):
            pytest.fail("the store must not open")


async def test_a_unit_of_work_commits_every_repository_together(db_path: Path) -> None:
    """What one task writes in `atomic()`, through any repository, is one transaction."""
    async with open_sqlite_store(db_path) as store:
        await store.sessions.create(make_session(), b"s")

        async def move_then_fail() -> None:
            async with store.atomic():
                await store.candidates.save(make_candidate())
                await store.audit.append(make_audit())
                await store.events.append(make_event())
                # Nested units join the outer one: nothing of theirs commits on its own.
                async with store.atomic():
                    await store.candidates.save(make_candidate(n=2))
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            await move_then_fail()
        assert await store.candidates.list_for("sess_1") == []
        assert await store.events.bounds() is None

        async with store.atomic():
            await store.candidates.save(make_candidate())
            await store.events.append(make_event())
        assert len(await store.candidates.list_for("sess_1")) == 1
        assert await store.events.bounds() is not None
    assert raw_query(db_path, "SELECT count(*) FROM candidates") == [(1,)]


async def test_other_tasks_wait_for_a_unit_of_work_to_end(database: Database) -> None:
    """Another task's statement neither joins an open unit of work nor sees inside it."""
    inside = asyncio.Event()
    release = asyncio.Event()

    async def unit() -> None:
        async with database.transaction():
            await database.execute(INSERT_KEY)  # the same task: joins, no deadlock
            inside.set()
            await release.wait()
            await database.execute(INSERT_KEY.replace("'k'", "'k2'"))

    task = asyncio.create_task(unit())
    await inside.wait()
    # Scheduled before the unit resumes: without the lock its query would run between the
    # unit's two inserts and see one row.
    reader = asyncio.create_task(database.fetch_all("SELECT id FROM api_keys"))
    release.set()
    await task
    assert sorted(row["id"] for row in await reader) == ["k", "k2"]


async def test_a_read_racing_a_write_never_leaves_a_stale_allowlist(db_path: Path) -> None:
    """The allowlist is read from memory; a load that overlapped a write is not kept."""
    async with open_sqlite_store(db_path) as store:
        await store.allowlist.put(make_entry(1))
        reading = asyncio.create_task(store.allowlist.list())  # queued behind nothing yet
        writing = asyncio.create_task(store.allowlist.put(make_entry(2)))
        assert [e.mac for e in await reading] in (
            [make_entry(1).mac],
            sorted([make_entry(1).mac, make_entry(2).mac]),
        )
        await writing
        assert [e.mac for e in await store.allowlist.list()] == sorted(
            [make_entry(1).mac, make_entry(2).mac]
        )
        assert raw_query(db_path, "SELECT count(*) FROM allowlist") == [(2,)]
