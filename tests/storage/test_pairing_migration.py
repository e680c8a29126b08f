"""Migration 0003 (pair-by-code) on a database that already holds pairing sessions."""

from __future__ import annotations

from pathlib import Path

from orchestrator.storage import load_migrations, open_sqlite_store
from orchestrator.storage.codec import encode_time
from orchestrator.storage.database import open_database
from orchestrator.storage.schema import migrate, schema_version
from tests.storage.samples import T0, at, make_pairing

PAIRING_MIGRATION = 3


async def test_codes_issued_before_the_migration_are_never_issued_again(db_path: Path) -> None:
    before = [m for m in load_migrations() if m.version < PAIRING_MIGRATION]
    async with open_database(db_path) as database:
        await migrate(database, before)
        await database.execute(
            "INSERT INTO provisioning_sessions VALUES (?, ?, ?, ?, ?)",
            ("KM9X3T", "dev-1", "10.0.0.9", encode_time(T0), encode_time(at(600))),
        )
    async with open_sqlite_store(db_path) as store:
        assert not await store.provisioning.issue_session(make_pairing("KM9X3T"))
        # The old session reads back unclaimed, and can be claimed.
        claimed = await store.provisioning.claim_session("KM9X3T", "key-a", at(1))
        assert claimed is not None
        assert claimed.device_id == "dev-1"
        assert claimed.claimed_by == "key-a"
    async with open_database(db_path) as database:
        assert await schema_version(database) >= PAIRING_MIGRATION
