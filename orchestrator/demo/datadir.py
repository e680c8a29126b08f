"""The demo's data directory, marked as the demo's own with a marker file.

Only a marked directory may have its TOTP codes shown in clear (`orchestrator demo code`), and
the demo puts its seed, keys and allowlist only into a new, empty or already marked directory:
never into a real appliance's state.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.demo.errors import DemoError

MARKER = ".orchestrator-demo"
MARKER_TEXT = (
    "This data directory was created by `orchestrator demo`: its TOTP codes may be shown in\n"
    "clear (`orchestrator demo code`). Never copy it to a real appliance.\n"
)


def is_demo_dir(data_dir: Path) -> bool:
    """Whether `data_dir` carries the demo's marker."""
    return (data_dir / MARKER).is_file()


def claim_data_dir(data_dir: Path) -> None:
    """Make `data_dir` a demo data directory: create it (0700), or mark an empty one; an
    earlier demo's is taken as it is. Anything else is refused with DemoError."""
    if data_dir.exists():
        if not data_dir.is_dir():
            raise DemoError(f"{data_dir} is not a directory")
        if is_demo_dir(data_dir):
            return
        if any(data_dir.iterdir()):
            raise DemoError(
                f"{data_dir} is not empty and was not created by the demo; the demo would put "
                "its TOTP seed and API keys among that state: give a new or empty directory"
            )
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    (data_dir / MARKER).write_text(MARKER_TEXT, encoding="utf-8")


def require_demo_dir(data_dir: Path) -> None:
    """Raise DemoError unless `data_dir` is a demo's data directory."""
    if not data_dir.is_dir():
        raise DemoError(f"{data_dir} is not a directory")
    if not is_demo_dir(data_dir):
        raise DemoError(
            f"{data_dir} was not created by `orchestrator demo` (it has no {MARKER}): codes "
            "are shown only for demo appliances; read a real appliance's codes from an "
            "authenticator app"
        )
