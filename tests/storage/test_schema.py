"""The migration files and how they are split into statements (no database needed)."""

from __future__ import annotations

import pytest

from orchestrator.storage.schema import Migration, load_migrations, split_statements


def test_shipped_migrations_are_numbered_from_one() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].label == "0001_initial"
    assert all(m.statements for m in migrations)


def test_statements_split_where_sqlite_says_they_end() -> None:
    script = """
        -- a comment; with a semicolon
        CREATE TABLE a (x TEXT DEFAULT 'semi;colon');  /* block; comment */
        CREATE TRIGGER t BEFORE DELETE ON a
        BEGIN
            SELECT RAISE(ABORT, 'no; never');
        END;
        INSERT INTO a VALUES ('x'); INSERT INTO a VALUES ('y');
        -- trailing comment
    """
    statements = split_statements(script)
    assert len(statements) == 4
    assert statements[0].endswith("DEFAULT 'semi;colon');")
    assert statements[1].startswith("/* block; comment */")
    assert statements[1].endswith("END;")
    assert statements[3] == "INSERT INTO a VALUES ('y');"


@pytest.mark.parametrize(
    "script",
    [
        "BEGIN; CREATE TABLE a (x);",
        "CREATE TABLE a (x);\n-- done\nCOMMIT;",
        "  /* sneaky */ rollback;",
        "SAVEPOINT s;",
    ],
)
def test_transaction_control_is_refused(script: str) -> None:
    with pytest.raises(ValueError, match="must not control transactions"):
        split_statements(script)


def test_an_unterminated_statement_is_refused() -> None:
    with pytest.raises(ValueError, match="unterminated"):
        split_statements("CREATE TABLE a (x); CREATE TABLE b (y)")


def test_versions_start_at_one() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        Migration.from_sql(0, "zero", "CREATE TABLE a (x);")
