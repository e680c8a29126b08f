"""A live appliance (real uvicorn on loopback, fake discovery and engine, step-up on, TOTP
enrolled) and the `orchestrator` command run against it as a separate process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pytest

from orchestrator.security.stepup import SecuritySettings
from orchestrator.security.totp import code_at, time_step
from tests.api.conftest import PASSWORD, Harness
from tests.api.test_events import Live, live_settings, serving

COMMAND_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Ran:
    """A finished command: exit status and what it wrote."""

    status: int
    out: str
    err: str


@dataclass
class Running:
    """A command still running (`batch follow`): its output, read line by line."""

    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)

    async def line_with(self, text: str, timeout_s: float = 10.0) -> str:
        """The next line of stdout holding `text` (every line read is kept in `lines`)."""
        assert self.process.stdout is not None
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    raw = await self.process.stdout.readline()
                    if not raw:
                        raise AssertionError(f"stdout ended before {text!r}: {self.lines}")
                    line = raw.decode().rstrip("\n")
                    self.lines.append(line)
                    if text in line:
                        return line
        except TimeoutError:
            raise AssertionError(f"no {text!r} within {timeout_s} s: {self.lines}") from None

    async def finish(self, timeout_s: float = 15.0) -> Ran:
        """Wait for the exit; the rest of stdout joins `lines`."""
        async with asyncio.timeout(timeout_s):
            out, err = await self.process.communicate()
        self.lines += out.decode().splitlines()
        assert self.process.returncode is not None
        return Ran(self.process.returncode, "\n".join(self.lines), err.decode())


@dataclass
class Cli:
    """Runs `orchestrator` (this interpreter, `-m orchestrator`) against the live appliance,
    with its URL and key in the environment as an operator would set them."""

    live: Live
    seed: str
    workdir: Path
    _next_step: int = -1

    @property
    def harness(self) -> Harness:
        return self.live.harness

    def code(self) -> str:
        """A TOTP code never used before: the appliance's clock stands still, and accepts
        the previous, current and next step (each once, in that order)."""
        step = time_step(self.harness.clock.now()) + self._next_step
        assert self._next_step <= 1, "three codes per time step: advance the clock"
        self._next_step += 1
        return code_at(self.seed, step)

    def env(self, **extra: str) -> dict[str, str]:
        # Without the developer's own ORCHESTRATOR_* settings.
        base = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
        return {
            **base,
            "ORCHESTRATOR_URL": self.live.base_url,
            "ORCHESTRATOR_API_KEY": self.harness.api_key,
            **extra,
        }

    async def _spawn(
        self, args: tuple[str, ...], env: dict[str, str] | None, *, stdin: bool
    ) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "orchestrator",
            *args,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env or self.env(),
            cwd=self.workdir,
            # No controlling terminal: nothing may wait for a person to type.
            start_new_session=True,
        )

    async def run(
        self, *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None
    ) -> Ran:
        """Run one command to completion."""
        process = await self._spawn(args, env, stdin=stdin is not None)
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT_S):
                out, err = await process.communicate(stdin)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert process.returncode is not None
        return Ran(process.returncode, out.decode(), err.decode())

    @contextlib.asynccontextmanager
    async def running(self, *args: str) -> AsyncIterator[Running]:
        """A command left running while the test drives the appliance; killed if the test
        ends first."""
        process = await self._spawn(args, None, stdin=False)
        try:
            yield Running(process)
        finally:
            if process.returncode is None:
                process.kill()
                await process.communicate()

    def password_file(self) -> Path:
        path = self.workdir / "wifi-password"
        path.write_text(PASSWORD + "\n", encoding="utf-8")
        return path


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    # The default security: starting a batch and allowlist changes need step-up.
    settings = msgspec.structs.replace(
        live_settings(tmp_path / "appliance"), security=SecuritySettings()
    )
    async with serving(settings) as served:
        yield served


@pytest.fixture
async def cli(live: Live, tmp_path: Path) -> Cli:
    """The CLI, and the harness stepped up (with a token) for the test's own gated calls."""
    seed = await live.harness.appliance.services.step_up.enroll()
    cli = Cli(live=live, seed=seed, workdir=tmp_path)
    stepped = await live.harness.client.post("/api/v1/auth/step-up", json={"code": cli.code()})
    assert stepped.status_code == 200, stepped.text
    live.harness.client.headers["X-Step-Up-Token"] = stepped.json()["data"]["token"]
    return cli
