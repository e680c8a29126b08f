"""Suite-wide rules: every test must leave no asyncio task behind, and where every test must
run (CI sets ORCHESTRATOR_TESTS_NO_SKIP=1), a skip is a failure."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Generator

import pytest

NO_SKIP = "ORCHESTRATOR_TESTS_NO_SKIP"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    """Turn a skip into a failure where the environment promises everything can run: the
    skips guard developer machines (no root, no multicast), and must never hide a check in CI."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.skipped and os.environ.get(NO_SKIP) == "1":
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped, but {NO_SKIP}=1 demands that every test runs: {reason}"


@pytest.fixture(autouse=True)
def restored_logging() -> Generator[None, None, None]:
    """Undo a test's `configure_logging` (the CLI's `main` run in-process calls it): its
    handler writes to the stderr pytest captured for that test, which is closed afterwards,
    and every later log line would print a logging error instead."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves tasks running (a fire-and-forget task is a bug)."""
    yield
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    for task in leaked:
        task.cancel()
    assert not leaked, f"test leaked tasks: {[t.get_coro() for t in leaked]}"
