"""`orchestrator demo` as a newcomer runs it: it prints the console URL, an API key and the
TOTP enrolment QR, `demo code` reads its current code, and Ctrl-C (SIGINT) or SIGTERM stops
it cleanly, leaving no Mosquitto and no data directory behind."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0
LAST_LINE = "Ctrl-C stops the demo"
CLI = [sys.executable, "-m", "orchestrator"]


def cli_env() -> dict[str, str]:
    """This environment minus the developer's ORCHESTRATOR_* settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}


def children(pid: int) -> dict[int, str]:
    """The child processes of `pid` and their command names."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # comm is in parentheses and may hold spaces: the fields after it are split safely.
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == pid:
            found[int(entry.name)] = comm
    return found


def gone(path: str) -> bool:
    return not Path(path).exists()


def field(text: str, label: str) -> str:
    found = re.search(rf"^{label}:\s+(\S+)", text, re.MULTILINE)
    assert found, f"no {label!r} line in:\n{text}"
    return found.group(1)


@asynccontextmanager
async def demo_process(stderr: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """`orchestrator demo --port 0`; killed if the test leaves it running."""
    with stderr.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *CLI, "demo", "--port", "0",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            env=cli_env(),
        )  # fmt: skip
        try:
            yield process
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


async def read_until(stream: asyncio.StreamReader, marker: str) -> str:
    lines = []
    async with asyncio.timeout(START_TIMEOUT_S):
        while line := (await stream.readline()).decode():
            lines.append(line)
            if marker in line:
                return "".join(lines)
    raise AssertionError("the demo ended before it was ready:\n" + "".join(lines))


async def demo_code(data_dir: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *CLI, "demo", "code", "--data-dir", data_dir,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(),
    )  # fmt: skip
    async with asyncio.timeout(START_TIMEOUT_S):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
async def test_demo_prints_what_a_newcomer_needs_and_stops_cleanly(
    tmp_path: Path, stop: signal.Signals
) -> None:
    stderr = tmp_path / "stderr.log"
    async with demo_process(stderr) as process:
        assert process.stdout is not None
        text = await read_until(process.stdout, LAST_LINE)
        url, key, data_dir = field(text, "Console"), field(text, "API key"), field(text, "Data dir")
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", url)
        assert key.startswith("dk_")
        assert "▀" in text  # the QR code, drawn with half blocks
        assert "otpauth://totp/" in text
        assert "DEMO ONLY" in text

        async with httpx.AsyncClient(base_url=url, timeout=5, trust_env=False) as client:
            health = await client.get("/api/v1/health")
            assert health.status_code == 200, health.text
            authed = await client.get("/api/v1/provisioning/allowlist", headers={"X-API-Key": key})
            assert authed.status_code == 200, authed.text
            assert len(authed.json()["data"]["entries"]) == 9

        status, out, err = await demo_code(data_dir)
        assert status == 0, err
        assert re.fullmatch(r"\d{6}\n", out)
        assert "DEMO ONLY" in err

        brokers = [pid for pid, name in children(process.pid).items() if name == "mosquitto"]
        assert len(brokers) == 1, children(process.pid)

        process.send_signal(stop)
        async with asyncio.timeout(STOP_TIMEOUT_S):
            rest = (await process.stdout.read()).decode()
            status = await process.wait()
    log = stderr.read_text(errors="replace")
    assert status == 0, log
    assert "demo stopped" in rest
    assert "Traceback" not in log, log
    assert gone(f"/proc/{brokers[0]}"), "mosquitto outlived the demo"
    assert gone(data_dir), "the throwaway data directory is still there"
