"""Numbered SQL migrations: loading them from package data and applying them atomically.

`PRAGMA user_version` records the last applied migration. Each migration file and its version
bump run in one explicit transaction, statement by statement (`executescript` would commit
on its own), so a failure leaves the schema and the version as they were.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Sequence
from importlib import resources

import msgspec

from orchestrator.ports.storage import StorageError
from orchestrator.storage.database import Database

logger = logging.getLogger(__name__)

_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")
_FIRST_WORD = re.compile(r"\w+")
_LEADING_COMMENTS = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*", re.DOTALL)
# Transaction control inside a file would end the runner's transaction early and break
# atomicity, so such statements are refused when the file is read.
_FORBIDDEN_VERBS = frozenset({"BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"})


class Migration(msgspec.Struct, frozen=True, kw_only=True):
    """One schema step: its number, a name, and its SQL split into statements."""

    version: int
    name: str
    statements: tuple[str, ...]

    @classmethod
    def from_sql(cls, version: int, name: str, sql: str) -> Migration:
        """A migration from script text; raises ValueError for a script it cannot run safely."""
        if version < 1:
            raise ValueError(f"migration versions start at 1, got {version}")
        return cls(version=version, name=name, statements=split_statements(sql))

    @property
    def label(self) -> str:
        """`NNNN_name`, as the file is called."""
        return f"{self.version:04d}_{self.name}"


def split_statements(sql: str) -> tuple[str, ...]:
    """The statements of a script, each ending in `;`.

    SQLite's own tokenizer (`complete_statement`) decides where a statement ends, so semicolons
    inside strings, comments and trigger bodies do not split it.
    """
    statements: list[str] = []
    pending = ""
    for piece in sql.split(";")[:-1]:
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            statement = pending.strip()
            pending = ""
            if _body(statement):
                statements.append(statement)
    rest = pending + sql.rsplit(";", maxsplit=1)[-1]
    if _body(rest):
        raise ValueError(f"unterminated statement at the end of the script: {rest.strip()[:60]}")
    for statement in statements:
        verb = _FIRST_WORD.match(_body(statement))
        if verb is not None and verb[0].upper() in _FORBIDDEN_VERBS:
            raise ValueError(f"a migration must not control transactions ({verb[0]})")
    return tuple(statements)


def _body(statement: str) -> str:
    """A statement without its leading comments and a lone terminator."""
    text = _LEADING_COMMENTS.sub("", statement, count=1).strip()
    return "" if text == ";" else text


def load_migrations() -> list[Migration]:
    """The migrations shipped in `orchestrator/storage/migrations/`, in version order."""
    folder = resources.files(__package__ or "orchestrator.storage").joinpath("migrations")
    migrations: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None:
            continue
        migrations.append(
            Migration.from_sql(
                int(match["version"]), match["name"], entry.read_text(encoding="utf-8")
            )
        )
    migrations.sort(key=lambda migration: migration.version)
    _require_sequence(migrations)
    return migrations


def _require_sequence(migrations: Sequence[Migration]) -> None:
    versions = [migration.version for migration in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migrations must be numbered 1, 2, 3, ... without gaps: {versions}")


async def schema_version(database: Database) -> int:
    """The database's `user_version`: the last migration applied (0 for a new file)."""
    row = await database.fetch_one("PRAGMA user_version")
    return 0 if row is None else int(row[0])


async def migrate(database: Database, migrations: Sequence[Migration]) -> list[int]:
    """Apply the migrations the database has not seen yet; return their versions.

    `migrations` must be numbered 1..N in order. A database already past N was written by
    newer code and is refused rather than misread.
    """
    _require_sequence(migrations)
    latest = len(migrations)
    current = await schema_version(database)
    if current > latest:
        raise StorageError(
            f"database schema version {current} is newer than this code knows ({latest}); "
            "upgrade the orchestrator or restore a matching backup"
        )
    applied: list[int] = []
    for migration in migrations[current:]:
        await _apply(database, migration)
        applied.append(migration.version)
    return applied


async def _apply(database: Database, migration: Migration) -> None:
    try:
        async with database.transaction() as statements:
            # Re-read under the write lock: another process may have migrated meanwhile.
            row = await statements.fetch_one("PRAGMA user_version")
            if row is not None and int(row[0]) >= migration.version:
                return
            for statement in migration.statements:
                await statements.execute(statement)
            # PRAGMA takes no parameters; the version is an int we validated.
            await statements.execute(f"PRAGMA user_version = {int(migration.version)}")
    except StorageError as exc:
        raise StorageError(
            f"migration {migration.label} failed and was rolled back: {exc}"
        ) from exc
    logger.info("applied migration %s", migration.label)
