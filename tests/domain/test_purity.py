"""Importing the domain must not drag in I/O: checked in a fresh interpreter's `sys.modules`.

This complements the import-linter contracts, which see only import statements: here a module
pulled in indirectly (through a third-party library, or lazily at import time) is caught too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orchestrator.domain

FORBIDDEN = ("asyncio", "socket", "aiosqlite", "litestar", "sqlite3")
REPO_ROOT = Path(orchestrator.domain.__file__).resolve().parents[2]

PROBE = """
import importlib, json, pkgutil, sys

FORBIDDEN = {forbidden!r}
already = sorted(name for name in FORBIDDEN if name in sys.modules)
import orchestrator.domain as domain

report = {{"before": already, "modules": {{}}}}
for info in sorted(pkgutil.iter_modules(domain.__path__), key=lambda i: i.name):
    name = f"orchestrator.domain.{{info.name}}"
    importlib.import_module(name)
    report["modules"][name] = sorted(m for m in FORBIDDEN if m in sys.modules)
print(json.dumps(report))
"""


def _probe() -> dict[str, object]:
    # -I: no PYTHON* variables, no user site, no current directory on sys.path, so only the
    # interpreter's own start-up and the domain's imports can populate sys.modules.
    code = f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r})\n" + PROBE.format(
        forbidden=FORBIDDEN
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter, a fixed program
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    report = json.loads(result.stdout)
    assert isinstance(report, dict)
    return report


def test_importing_every_domain_module_pulls_in_no_io() -> None:
    report = _probe()
    # The interpreter alone must not already hold them, or the check below would prove nothing.
    assert report["before"] == []
    modules = report["modules"]
    assert isinstance(modules, dict)
    # The probe really walked the package (a broken walk would pass vacuously).
    assert {
        "orchestrator.domain.mac",
        "orchestrator.domain.errors",
        "orchestrator.domain.session",
        "orchestrator.domain.candidate",
        "orchestrator.domain.batch",
        "orchestrator.domain.events",
        "orchestrator.domain.allowlist",
        "orchestrator.domain.pairing",
        "orchestrator.domain.apikey",
        "orchestrator.domain.audit",
    } <= set(modules)
    offenders = {name: found for name, found in modules.items() if found}
    assert offenders == {}
