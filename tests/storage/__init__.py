"""Tests of orchestrator.storage: one contract suite for both stores, plus SQLite specifics."""
