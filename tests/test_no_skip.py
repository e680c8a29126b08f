"""Where every test must run (CI), the suite's skip guards turn into failures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import NO_SKIP

REPO = Path(__file__).parents[1]


def run_suite_on(test_file: Path, *, no_skip: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != NO_SKIP}
    if no_skip:
        env[NO_SKIP] = "1"
    return subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
         "-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function",
         "--rootdir", str(test_file.parent), str(test_file)],
        capture_output=True, text=True, check=False, cwd=REPO, env=env, timeout=60,
    )  # fmt: skip


def test_a_skip_fails_only_where_every_test_must_run(tmp_path: Path) -> None:
    test_file = tmp_path / "test_guarded.py"
    test_file.write_text(
        "import pytest\n"
        "@pytest.mark.skipif(True, reason='needs a radio')\n"
        "def test_marked() -> None: ...\n"
        "def test_called() -> None:\n"
        "    pytest.skip('no multicast here')\n"
    )
    relaxed = run_suite_on(test_file, no_skip=False)
    assert relaxed.returncode == 0, relaxed.stdout
    assert "2 skipped" in relaxed.stdout
    strict = run_suite_on(test_file, no_skip=True)
    assert strict.returncode == 1
    # A skip in setup (a skipif mark, a guard fixture) reports as an error, one in the test
    # body as a failure: neither passes.
    assert "1 failed, 1 error" in strict.stdout
    assert f"skipped, but {NO_SKIP}=1 demands that every test runs" in strict.stdout
