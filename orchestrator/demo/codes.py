"""DEMO ONLY: the current TOTP code of a demo appliance, so a newcomer needs no phone.

A real appliance never shows a code: its seed is shown once, as a QR code, and codes come
from the operator's authenticator app. Reading one here does not use it up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import msgspec

from orchestrator.demo.datadir import require_demo_dir
from orchestrator.demo.errors import DemoError
from orchestrator.ports.secrets import Sealer
from orchestrator.ports.storage import TotpRepository
from orchestrator.security import totp
from orchestrator.security.secretbox import SecretBox, SecretBoxError
from orchestrator.security.stepup import SEAL_CONTEXT
from orchestrator.service import open_store
from orchestrator.settings import Settings, StorageSettings

LABEL = "DEMO ONLY"
NEXT_STEP_MARGIN_S = 0.05
"""Past the step boundary before reading again, so that the new step has surely begun."""


class CurrentCode(msgspec.Struct, frozen=True, kw_only=True):
    """A TOTP code and the moment the next one takes over."""

    code: str
    step: int
    changes_at: datetime

    def __repr__(self) -> str:
        return f"CurrentCode(code=<redacted>, changes_at={self.changes_at.isoformat()})"


async def current_code(repository: TotpRepository, sealer: Sealer, now: datetime) -> CurrentCode:
    """The code of the enrolled seed at `now`; DemoError when none is enrolled or the seed
    does not open."""
    enrollment = await repository.get()
    if enrollment is None:
        raise DemoError("no TOTP seed is enrolled yet: is the demo still starting?")
    try:
        seed = sealer.open(enrollment.sealed_seed, SEAL_CONTEXT)
    except SecretBoxError as exc:
        raise DemoError("the TOTP seed does not open with this data directory's key") from exc
    step = totp.time_step(now)
    return CurrentCode(
        code=totp.code_at(seed, step),
        step=step,
        changes_at=datetime.fromtimestamp((step + 1) * totp.STEP_S, UTC),
    )


async def read_code(data_dir: Path, now: datetime) -> CurrentCode:
    """The current code of the demo appliance whose data directory is `data_dir` (running or
    not); DemoError for a directory the demo did not create."""
    require_demo_dir(data_dir)
    storage = StorageSettings(data_dir=str(data_dir))
    if not storage.database_path.is_file() or not storage.secret_key_path.is_file():
        raise DemoError(f"{data_dir} holds no appliance yet: is the demo still starting?")
    async with open_store(Settings(storage=storage)) as store:
        sealer = SecretBox.from_key_file(storage.secret_key_path)
        return await current_code(store.totp, sealer, now)


def code_line(code: CurrentCode, now: datetime) -> str:
    """How a new code is announced: when, the label, the code and when it changes."""
    here = now.astimezone()
    changes = code.changes_at.astimezone()
    return (
        f"{here:%H:%M:%S} {LABEL}: TOTP code {code.code} "
        f"(the next one at {changes:%H:%M:%S}; a real appliance never shows its codes)\n"
    )


async def announce_codes(
    read: Callable[[datetime], Awaitable[CurrentCode]],
    out: TextIO,
    *,
    clock: Callable[[], datetime],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Write each new code to `out` as it takes over (every 30 s), until cancelled."""
    last_step: int | None = None
    while True:
        now = clock()
        code = await read(now)
        if code.step != last_step:
            out.write(code_line(code, now))
            out.flush()
            last_step = code.step
        await sleep((code.changes_at - clock()).total_seconds() + NEXT_STEP_MARGIN_S)
