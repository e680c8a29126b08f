"""Fixtures of the storage tests: a Store of each kind, and a check that no SQLite thread
outlives its test (an unclosed aiosqlite connection would hang the process at exit)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from orchestrator.ports.storage import Store
from orchestrator.storage import MemoryStore, open_sqlite_store


def _sqlite_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if "_connection_worker_thread" in t.name]


@pytest.fixture(autouse=True)
def no_leaked_sqlite_thread() -> Iterator[None]:
    """Fail a test that leaves an aiosqlite worker thread running."""
    before = set(_sqlite_threads())
    yield
    leaked = [t for t in _sqlite_threads() if t not in before]
    for thread in leaked:
        # A closed connection's thread exits right after its last reply; give it that moment.
        thread.join(timeout=2)
    assert not [t for t in leaked if t.is_alive()], "an aiosqlite connection was left open"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where a test's SQLite database lives."""
    return tmp_path / "orchestrator.db"


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, db_path: Path) -> AsyncIterator[Store]:
    """The fake and the real store, so each contract test runs against both."""
    if request.param == "memory":
        yield MemoryStore()
        return
    async with open_sqlite_store(db_path) as sqlite_store:
        yield sqlite_store
