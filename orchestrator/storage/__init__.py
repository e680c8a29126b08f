"""Persistence: the SQLite store (the only user of aiosqlite) and its in-memory fake.

`open_sqlite_store(path)` owns the connection; `MemoryStore()` needs no opening. Both
implement `orchestrator.ports.storage.Store` and pass one contract suite.
"""

from orchestrator.storage.memory import MemoryStore
from orchestrator.storage.schema import Migration, load_migrations
from orchestrator.storage.sqlite_store import SqliteStore, open_sqlite_store

__all__ = ["MemoryStore", "Migration", "SqliteStore", "load_migrations", "open_sqlite_store"]
